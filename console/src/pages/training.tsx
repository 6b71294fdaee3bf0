import { Page } from "../components/ui";

export function Training() {
  return <Page title="Training"><p>Coming next.</p></Page>;
}
