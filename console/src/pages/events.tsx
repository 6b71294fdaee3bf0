import { Page } from "../components/ui";

export function Events() {
  return <Page title="Events"><p>Coming next.</p></Page>;
}
