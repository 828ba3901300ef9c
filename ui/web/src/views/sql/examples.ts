// Example queries of the SQL console, one per kind of question the tables answer.

export interface Example {
  title: string;
  sql: string;
}

export const EXAMPLES: Example[] = [
  {
    title: "Error lines per service (15 min)",
    sql: `SELECT service, count(*) AS errors
FROM logs
WHERE ts > now() - INTERVAL '15 minutes' AND severity_number >= 17
GROUP BY service
ORDER BY errors DESC`,
  },
  {
    title: "Slowest operations, p99 (15 min)",
    sql: `SELECT service, name, count(*) AS calls,
       approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e6 AS p99_ms
FROM spans
WHERE start > now() - INTERVAL '15 minutes'
GROUP BY service, name
ORDER BY p99_ms DESC
LIMIT 20`,
  },
  {
    title: "Failing spans by service and message",
    sql: `SELECT service, status_message, count(*) AS spans
FROM spans
WHERE status_code = 2 AND start > now() - INTERVAL '15 minutes'
GROUP BY service, status_message
ORDER BY spans DESC
LIMIT 20`,
  },
  {
    title: "Full-text: lines mentioning an exception",
    sql: `SELECT ts, service, severity, trace_id, span_id, body
FROM logs
WHERE match(body, 'exception') AND ts > now() - INTERVAL '15 minutes'
ORDER BY ts DESC
LIMIT 100`,
  },
  {
    title: "Log lines of failing spans (join)",
    sql: `SELECT s.service, s.name, l.ts, l.body, s.trace_id
FROM spans s
JOIN logs l ON l.trace_id = s.trace_id AND l.span_id = s.span_id
WHERE s.status_code = 2
  AND s.start > now() - INTERVAL '5 minutes'
  AND l.ts > now() - INTERVAL '5 minutes'
LIMIT 100`,
  },
  {
    title: "Calls and latency per HTTP route",
    sql: `SELECT attributes['http.route'] AS route, count(*) AS calls,
       avg(duration_ns) / 1e6 AS avg_ms
FROM spans
WHERE kind = 'server' AND start > now() - INTERVAL '15 minutes'
GROUP BY route
ORDER BY calls DESC
LIMIT 20`,
  },
  {
    title: "CPU per service (metrics)",
    sql: `SELECT service, avg(value) AS cpu, max(value) AS peak
FROM metrics
WHERE metric = 'process_cpu_usage' AND ts > now() - INTERVAL '15 minutes'
GROUP BY service
ORDER BY cpu DESC`,
  },
  {
    title: "Log volume per minute",
    sql: `SELECT date_bin(INTERVAL '1 minute', ts) AS minute, count(*) AS lines,
       sum(CASE WHEN severity_number >= 17 THEN 1 ELSE 0 END) AS errors
FROM logs
WHERE ts > now() - INTERVAL '30 minutes'
GROUP BY minute
ORDER BY minute`,
  },
];
