"""Sends three log records to Sightline through python-logging-loki's LokiHandler.

Usage: loki_logging.py http://127.0.0.1:PORT/loki/api/v1/push
A failed push raises (the handler's error hook re-raises), so the script exits non-zero.
"""
import logging
import sys

import logging_loki

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def reraise(_record):
    raise  # noqa: PLE0704 - called by logging inside its except block


def main():
    handler = logging_loki.LokiHandler(
        url=sys.argv[1],
        tags={"service_name": "checkout", "pod": "checkout-0"},
        version="1",
    )
    handler.handleError = reraise
    logger = logging.getLogger("checkout.orders")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.info("订单已创建 order created", extra={"tags": {"region": "eu-west"}})
    logger.warning(f"[checkout,{TRACE},a3ce929d0e0e4736] payment slow")
    logger.error("库存不足 out of stock")


if __name__ == "__main__":
    main()
