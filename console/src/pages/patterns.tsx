import { Page } from "../components/ui";

export function Patterns() {
  return <Page title="Patterns"><p>Coming next.</p></Page>;
}
