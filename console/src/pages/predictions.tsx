import { Page } from "../components/ui";

export function Predictions() {
  return <Page title="Predictions"><p>Coming next.</p></Page>;
}
