import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// Built into the Python package, which serves it at "/" (learnloop.console.serve).
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "../src/learnloop/console/static",
    emptyOutDir: true,
    // The polyfill would be an inline script, which the Content-Security-Policy forbids.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1200,
  },
  server: { proxy: { "/v1": { target: "http://127.0.0.1:8000", ws: true } } },
});
