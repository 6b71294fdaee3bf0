import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";
import { useLocation } from "preact-iso";
import { client, currentProject, json, ok, onProjectsChanged, setProject } from "../api/client";
import { useSession } from "../session";
import { href, useApi } from "../util";

const NAV: [string, string][] = [
  ["/", "Overview"], ["/generations", "Generations"], ["/review", "Review queue"], ["/analytics", "Analytics"],
  ["/knowledge", "Knowledge"], ["/training", "Training"], ["/dictionary", "Dictionary"],
  ["/predictions", "Predictions"], ["/events", "Events"], ["/settings", "Settings"],
];

export function Layout({ children, onSignedOut }: { children: ComponentChildren; onSignedOut: () => void }) {
  const s = useSession();
  const loc = useLocation();
  const projects = useApi(() => ok(client.GET("/v1/projects")), []);
  useEffect(() => onProjectsChanged(projects.reload), [projects.reload]);
  // A link to another project (shared URL) switches before the page's requests go out.
  const fromUrl = new URLSearchParams(loc.url.split("?")[1] || "").get("project");
  if (fromUrl && fromUrl !== currentProject()) setProject(fromUrl);
  const project = currentProject();
  const pick = (name: string) => {
    setProject(name);
    localStorage.setItem("learnloop.project", name);
    loc.route(href(loc.path));
  };
  const signOut = async () => {
    await json("/v1/console/session", { method: "DELETE" }).catch(() => null);
    onSignedOut();
  };
  const names = (projects.data || []).map((p) => p.name);
  if (!names.includes(project)) names.unshift(project);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">learnloop</span>
        <nav aria-label="Console">
          <ul>
            {NAV.map(([path, label]) => {
              const active = path === "/" ? loc.path === "/" : loc.path.startsWith(path);
              return <li><a href={href(path)} aria-current={active ? "page" : undefined}>{label}</a></li>;
            })}
          </ul>
        </nav>
        <div class="who">
          <label for="project-picker">Project</label>
          <select id="project-picker" value={project} onChange={(e) => pick((e.target as HTMLSelectElement).value)}>
            {names.map((n) => <option value={n}>{n}</option>)}
          </select>
          <span class="muted" title={`key: ${s.key_name}`}>{s.tenant} · {s.can_write ? (s.is_admin ? "admin" : "write") : "read only"}</span>
          <button type="button" class="small" onClick={signOut}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>{children}</main>
    </>
  );
}
