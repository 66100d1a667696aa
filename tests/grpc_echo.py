#!/usr/bin/env python3
"""A gRPC service and its client on Python's gRPC (Debian: python3-grpcio), for the gRPC test
under `prescale up` (tests/grpc_gateway_test.cc). Messages are raw bytes: no generated code.

  grpc_echo.py serve PORT     serves prescale.test.Echo on 127.0.0.1:PORT until killed:
                              Unary (echo:<request>, trailing metadata x-served-by: python),
                              Stream (three messages 0:, 1:, 2: <request>),
                              Chat (bidirectional: re:<message> for each message, as it comes),
                              Fail (NOT_FOUND "no such item: <request>"),
                              and grpc.health.v1.Health/Check: SERVING for the server as a
                              whole ("") and for prescale.test.Echo, NOT_FOUND for any other
  grpc_echo.py call HOST:PORT calls each once through HOST:PORT and prints what came back (Chat
                              sends each message only once the answer to the one before came:
                              a proxy that waits for the whole request never passes it on);
                              exits 0 when every answer is the expected one
"""
import queue
import sys
from concurrent import futures

import grpc

SERVICE = "prescale.test.Echo"
HEALTH = "grpc.health.v1.Health"


def health_check(request, context):
    """HealthCheckRequest {string service = 1} in, HealthCheckResponse {status = 1} out, as raw
    protobuf bytes (names under 128 bytes: a one-byte length)."""
    name = request[2:2 + request[1]] if request[:1] == b"\x0a" else b""
    if name in (b"", SERVICE.encode()):
        return b"\x08\x01"  # SERVING
    context.abort(grpc.StatusCode.NOT_FOUND, "unknown service " + name.decode())


def serve(port):
    def unary(request, context):
        context.set_trailing_metadata((("x-served-by", "python"),))
        return b"echo:" + request

    def stream(request, context):
        for i in range(3):
            yield b"%d:" % i + request

    def fail(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such item: " + request.decode())

    def chat(requests, context):
        for message in requests:
            yield b"re:" + message

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    })
    health = grpc.method_handlers_generic_handler(HEALTH, {
        "Check": grpc.unary_unary_rpc_method_handler(health_check),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler, health))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    server.wait_for_termination()


def call(target):
    ok = True
    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary("/%s/Unary" % SERVICE)
        answer, c = unary.with_call(b"hi", timeout=10)
        trailers = dict(c.trailing_metadata())
        print("unary", answer.decode(), trailers.get("x-served-by"))
        ok = ok and answer == b"echo:hi" and trailers.get("x-served-by") == "python"

        stream = channel.unary_stream("/%s/Stream" % SERVICE)
        messages = [m.decode() for m in stream(b"x", timeout=10)]
        print("stream", " ".join(messages))
        ok = ok and messages == ["0:x", "1:x", "2:x"]

        chat = channel.stream_stream("/%s/Chat" % SERVICE)
        answers = queue.Queue()

        def messages_after_answers():
            for i in range(3):
                yield b"m%d" % i
                answers.get(timeout=10)  # the answer to this one first

        replies = []
        try:
            for reply in chat(messages_after_answers(), timeout=10):
                replies.append(reply.decode())
                answers.put(reply)
        except grpc.RpcError as e:
            replies.append("error:%s" % e.code().name)
        print("chat", " ".join(replies))
        ok = ok and replies == ["re:m0", "re:m1", "re:m2"]

        fail = channel.unary_unary("/%s/Fail" % SERVICE)
        try:
            fail(b"42", timeout=10)
            print("fail answered")
            ok = False
        except grpc.RpcError as e:
            print("fail", e.code().name, e.details())
            ok = ok and e.code() == grpc.StatusCode.NOT_FOUND and e.details() == "no such item: 42"
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "call":
        sys.exit(call(sys.argv[2]))
    else:
        sys.exit(__doc__)
