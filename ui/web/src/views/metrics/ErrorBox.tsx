// A query error as the server explained it (status and message).
import { ApiError } from "../../api";

export interface QueryError {
  status?: number;
  message: string;
}

/** Turns anything thrown by a fetch into a displayable error. */
export function toError(error: unknown): QueryError {
  if (error instanceof ApiError) return { status: error.status, message: error.message };
  return { message: error instanceof Error ? error.message : String(error) };
}

export function ErrorBox({ error, testid = "promql-error" }: { error: QueryError; testid?: string }) {
  return (
    <div class="query-error" role="alert" data-testid={testid}>
      <b>{error.status ? `Query failed (HTTP ${error.status})` : "Query failed"}</b>
      <pre>{error.message}</pre>
    </div>
  );
}
