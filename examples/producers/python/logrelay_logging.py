"""Ship Python `logging` records to logrelay through RabbitMQ (pika).

Copy this file next to your code, then:

    import logging
    from logrelay_logging import LogrelayHandler

    logging.getLogger().addHandler(LogrelayHandler(project="shop"))
    logging.getLogger("shop.cart").error("checkout failed", exc_info=True)

Each record is published as one JSON object (logrelay reads `created`, `levelname`, `module`
(the logger's name), `message`; the traceback is kept as the attribute `exc_info`, `extra=` fields as attributes too)
to the `logs` exchange with the routing key `<project>.<logger name>`, persistent and confirmed.
"""

import json
import logging
import os
import threading

import pika


class LogrelayHandler(logging.Handler):
    """A logging handler that publishes each record to logrelay's exchange."""

    # LogRecord attributes that are not sent as they are.
    _SKIP = {"msg", "args", "exc_info", "exc_text", "stack_info", "message", "asctime"}

    def __init__(self, project, url=None, exchange="logs", level=logging.NOTSET):
        super().__init__(level)
        self.project = project
        self.exchange = exchange
        url = url or os.environ.get("LOGRELAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        self._connection = pika.BlockingConnection(pika.URLParameters(url))
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self._echo = os.environ.get("LOGRELAY_PRINT") == "1"
        self._publishing = threading.local()

    def emit(self, record):
        # pika logs through `logging` too: its own records, and any logged while this handler
        # publishes, would re-enter the connection and block it.
        if record.name.startswith("pika") or getattr(self._publishing, "active", False):
            return
        self._publishing.active = True
        try:
            body = {k: v for k, v in vars(record).items() if k not in self._SKIP}
            body["message"] = record.getMessage()
            body["project"] = self.project
            # logrelay's `module` is the logger's name; LogRecord's own `module` (the file's
            # module) is kept under another name.
            body["source_module"] = body.pop("module", None)
            body["module"] = body.pop("name")
            if record.exc_info:
                body["exc_info"] = self.formatException(record.exc_info)
            if record.stack_info:
                body["stack_info"] = record.stack_info
            text = json.dumps(body, default=str)
            if self._echo:
                print(text, flush=True)
            self._channel.basic_publish(
                self.exchange,
                f"{self.project}.{record.name}",
                text.encode(),
                pika.BasicProperties(content_type="application/json", delivery_mode=2),
            )
        except Exception:
            self.handleError(record)
        finally:
            self._publishing.active = False

    def formatException(self, exc_info):
        return logging.Formatter().formatException(exc_info)

    def close(self):
        try:
            if self._connection.is_open:
                self._connection.close()
        finally:
            super().close()


if __name__ == "__main__":
    # A demonstration, also run by the integration test.
    logging.basicConfig(level=logging.DEBUG, handlers=[LogrelayHandler(
        project=os.environ.get("LOGRELAY_PROJECT", "shop"),
        exchange=os.environ.get("LOGRELAY_EXCHANGE", "logs"),
    )])
    log = logging.getLogger("shop.cart")
    log.info("cart created", extra={"cart_id": 17})
    log.warning("cart almost full")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("checkout failed")
    logging.shutdown()
