// The Traces view (`/ui/traces`): search (`service`, `operation`, `tags`, `min`, `max`,
// `status`, `limit`, or a raw TraceQL `q`) with a scatter plot and a results table;
// `?trace=<id>` shows one trace's waterfall (`&span=<id>` selects a span).
import type { ViewProps } from "../../app/view";
import { Search } from "./Search";
import { TraceDetail } from "./TraceDetail";

export function TracesView(props: ViewProps) {
  return props.params.get("trace") ? <TraceDetail {...props} /> : <Search {...props} />;
}
