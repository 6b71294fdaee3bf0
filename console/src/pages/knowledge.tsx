import { Page } from "../components/ui";

export function Knowledge() {
  return <Page title="Knowledge"><p>Coming next.</p></Page>;
}
