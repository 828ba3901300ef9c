// Placeholder until this view lands (issue 7); the shell and URL state are final.
import type { ViewProps } from "../../app/view";

export function LogsView(_props: ViewProps) {
  return <section class="placeholder">This view is being built.</section>;
}
