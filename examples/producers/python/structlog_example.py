"""Ship structlog events to logrelay through RabbitMQ (pika).

structlog renders each event as JSON (`event`, `level`, `timestamp`, `logger`, your bound
fields, `exception` with the traceback); `AmqpLogger` publishes the rendered text. Copy the
`configure` call and the class:

    log = structlog.get_logger().bind(logger="shop.pay")
    log.error("payment failed", order="A-1")
"""

import os

import pika
import structlog


class AmqpLogger:
    """The final logger of structlog's chain: publishes each rendered event to logrelay."""

    def __init__(self, project, url=None, exchange="logs"):
        url = url or os.environ.get("LOGRELAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        self._connection = pika.BlockingConnection(pika.URLParameters(url))
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self._exchange = exchange
        self._routing_key = project
        self._echo = os.environ.get("LOGRELAY_PRINT") == "1"

    def msg(self, message):
        if self._echo:
            print(message, flush=True)
        self._channel.basic_publish(
            self._exchange,
            self._routing_key,
            message.encode(),
            pika.BasicProperties(content_type="application/json", delivery_mode=2),
        )

    log = debug = info = warning = warn = error = critical = exception = fatal = msg

    def close(self):
        self._connection.close()


def configure(project, exchange="logs"):
    """Configures structlog to render JSON and publish it; returns the publishing logger."""
    amqp = AmqpLogger(project, exchange=exchange)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=lambda *args: amqp,
        cache_logger_on_first_use=True,
    )
    return amqp


if __name__ == "__main__":
    # A demonstration, also run by the integration test.
    amqp = configure(
        project=os.environ.get("LOGRELAY_PROJECT", "shop"),
        exchange=os.environ.get("LOGRELAY_EXCHANGE", "logs"),
    )
    log = structlog.get_logger().bind(logger="shop.pay", project=os.environ.get("LOGRELAY_PROJECT", "shop"))
    log.info("payment started", order="A-1")
    try:
        raise ValueError("card declined")
    except ValueError:
        log.exception("payment failed", order="A-1")
    amqp.close()
