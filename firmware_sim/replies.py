"""How a simulated Modbus endpoint answers: one request at a time, each after its device's latency.

pymodbus 3.16's request handler (`ServerRequestHandler`) answers a request with
whatever PDU arrived last on the connection (`last_pdu`): if a reply is late
and the client has meanwhile sent its next request, the late reply goes out
with the new request's transaction id, and the client takes it for the answer
to the wrong question. `Replies` replaces it: each request is answered by its
own task, with its own transaction id, unit id and address, and a device that
takes long delays nobody but those queued behind it on the same endpoint.

`EndpointReplies` is the endpoint's side (one per Modbus TCP server, one per
RS-485 line): one request at a time (a device, a gateway or a line serves one
master's request at a time, so a slow reply delays the requests behind it on
that endpoint, never another endpoint's), waiting `delay_s(unit)` before the
request reaches the datastore (the device takes the request, works on it, then
its answer and its effect on the plant come together). The wait is an
`asyncio.sleep`: the event loop, and every other endpoint, keep running.

A request for a silenced device (`RequestLost`, raised by the datastore's action)
is never answered and frees the endpoint at once; `close()` cancels the answers
still pending, so that shutdown never hangs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusIOException, NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.transaction import TransactionManager

log = logging.getLogger(__name__)

__all__ = ["EndpointReplies", "RepliesSerialServer", "RepliesTcpServer", "RequestLost"]

DelayFor = Callable[[int], float]
"""unit id -> [s] how long the device behind it takes for the request now arriving."""


class RequestLost(Exception):
    """Raised by a datastore action: the request is lost on the wire and never answered."""


class EndpointReplies:
    """The answering side of one endpoint (see the module docstring)."""

    def __init__(self, delay_s: DelayFor) -> None:
        self.delay_s = delay_s
        self._busy = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    def take(self, handler: Replies, pdu: ModbusPDU, addr: tuple[Any, ...] | None) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(handler, pdu, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        pending, self._pending = self._pending, set()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _answer(
        self, handler: Replies, pdu: ModbusPDU, addr: tuple[Any, ...] | None
    ) -> None:
        server = handler.server
        async with self._busy:
            delay = self.delay_s(pdu.dev_id)
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await pdu.datastore_update(server.context, pdu.dev_id)
            except RequestLost:
                return
            except NoSuchIdException:
                if server.ignore_missing_devices:
                    return  # an absent unit id is silent on RS-485
                response = ExceptionResponse(pdu.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
            except Exception:
                log.exception("unit %s: the datastore failed; answering DEVICE_FAILURE", pdu.dev_id)
                response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        handler.server_send(response, addr)  # type: ignore[no-untyped-call]


class Replies(ServerRequestHandler):
    """One connection's handler: hands every whole request to its endpoint's `EndpointReplies`."""

    def __init__(self, owner: Any, replies: EndpointReplies) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect
        )
        self.replies = replies

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        try:
            used = TransactionManager.callback_data(self, data, addr)
        except ModbusIOException as exc:  # as pymodbus answers a request it cannot decode
            response = ExceptionResponse(
                0 if exc.fcode is None else exc.fcode,
                exception_code=ExcCodes.ILLEGAL_FUNCTION,
                device_id=exc.dev_id,
                transaction=exc.transaction_id,
            )
            self.server_send(response, addr)  # type: ignore[no-untyped-call]
            return len(data)
        pdu, self.last_pdu = self.last_pdu, None
        if pdu is not None:
            self.replies.take(self, pdu, addr)
        return int(used)


class RepliesTcpServer(ModbusTcpServer):
    """A `ModbusTcpServer` whose connections answer through `replies`."""

    def __init__(self, *args: Any, replies: EndpointReplies, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replies = replies

    def callback_new_connection(self) -> Replies:
        return Replies(self, self.replies)


class RepliesSerialServer(ModbusSerialServer):
    """A `ModbusSerialServer` (one line) that answers through `replies`."""

    def __init__(self, *args: Any, replies: EndpointReplies, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replies = replies

    def callback_new_connection(self) -> Replies:
        return Replies(self, self.replies)
