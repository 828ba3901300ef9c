"""Drives Sightline's Elasticsearch-compatible API with the official Python client (8.x).

Usage: es_bulk.py http://127.0.0.1:PORT/es
Prints one JSON object: the info() answer, index existence, and helpers.bulk's result
(success count and per-item errors).
"""
import json
import sys

from elasticsearch import Elasticsearch, helpers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "a3ce929d0e0e4736"


def actions():
    yield {
        "_index": "logs-funding",
        "_id": "doc-1",
        "_source": {
            "@timestamp": "2026-01-15T10:15:32.123Z",
            "message": f"2026-01-15 10:15:32.123  INFO [funding,{TRACE},{SPAN}] 1 --- [nio-8080-exec-7] "
                       "c.t.FundingService : 支付成功 payment accepted",
            "log.level": "INFO",
            "service.name": "funding",
            "host.name": "funding-7d9f-abc",
            "process": {"thread": {"name": "nio-8080-exec-7"}, "pid": 1},
            "log.logger": "com.tabby.FundingService",
        },
    }
    yield {
        "_index": "logs-funding",
        "_op_type": "create",
        "_source": {
            "@timestamp": 1768472133000,
            "message": "订单查询失败: timeout after 3000 ms",
            "log": {"level": "ERROR"},
            "service": {"name": "orders"},
            "trace": {"id": TRACE},
            "span": {"id": "b3ce929d0e0e4736"},
            "kubernetes": {"pod": {"name": "orders-0"}, "container": {"name": "orders"}},
            "error": {"type": "java.net.SocketTimeoutException"},
        },
    }
    yield {
        "_index": "logs-funding",
        "_id": "bad-1",
        "_source": {"@timestamp": "yesterday at noon", "message": "this one must be refused"},
    }


def main():
    client = Elasticsearch(sys.argv[1], request_timeout=30)
    info = client.info()
    exists = bool(client.indices.exists(index="logs-funding"))
    created = client.indices.create(index="logs-funding").body
    success, errors = helpers.bulk(client, actions(), raise_on_error=False, stats_only=False)
    json.dump(
        {"info": info.body, "exists": exists, "created": created, "success": success, "errors": errors},
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
