import { Page } from "../components/ui";
import { href } from "../util";

export function NotFound() {
  return (
    <Page title="Not found">
      <p>There is no page at this address.</p>
      <p><a href={href("/")}>Back to the overview</a></p>
    </Page>
  );
}
