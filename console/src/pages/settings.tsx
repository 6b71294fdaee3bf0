import { Page } from "../components/ui";

export function Settings() {
  return <Page title="Settings"><p>Coming next.</p></Page>;
}
