import { Page } from "../components/ui";

export function Dictionary() {
  return <Page title="Dictionary"><p>Coming next.</p></Page>;
}
