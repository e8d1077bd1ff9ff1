#!/usr/bin/env python3
"""twofactord's wire protocol checked by an independent client:
Python's websocket-client. Exact bytes where the spec gives them.

  protocol.py --mode root    --unix SOCK --tcp HOST:PORT   (run as root)
  protocol.py --mode nonroot --unix SOCK [--user U --password P]  (run as another uid)

Exits 0 when every check passed; prints one line per check.
"""

import argparse
import json
import os
import socket
import sys
import time

import websocket  # websocket-client

TIMEOUT = 15


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def eq(got, want, what):
    if got != want:
        fail("%s:\n  got:  %r\n  want: %r" % (what, got, want))


def unix_ws(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    # Any Host over the socket.
    return websocket.create_connection("ws://whatever.example/api/current", socket=s, timeout=TIMEOUT)


def tcp_ws(addr):
    return websocket.create_connection("ws://%s/api/current" % addr, timeout=TIMEOUT)


def req(method, id=1, params=None):
    m = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        m["params"] = params
    return json.dumps(m)


def call(ws, method, params=None, id=1):
    ws.send(req(method, id, params))
    return json.loads(ws.recv())


def expect_close(ws, code, what):
    """Reads until the close frame; checks its code."""
    while True:
        try:
            op, data = ws.recv_data(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            fail("%s: connection dropped without a close frame" % what)
        if op == websocket.ABNF.OPCODE_CLOSE:
            got = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            eq(got, code, what + " close code")
            return data[2:].decode()


def http_get(connect, path):
    s = connect()
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return head.decode(), body.decode()


ENVELOPE_CASES = [
    # (sent, exact answer or None for "no answer")
    ('{"method":"core.ping","id":1}',
     '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Missing \'jsonrpc\' member"},"id":1}'),
    ('{"jsonrpc":"1.0","method":"core.ping","id":"a"}',
     '{"jsonrpc":"2.0","error":{"code":-32600,"message":"\'jsonrpc\' member must be of type string and must be exactly \'2.0\'"},"id":"a"}'),
    ('{"jsonrpc":"2.0","id":2}',
     '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Missing \'method\' member"},"id":2}'),
    ('{"jsonrpc":"2.0","method":5,"id":3}',
     '{"jsonrpc":"2.0","error":{"code":-32600,"message":"\'method\' member must be of type string"},"id":3}'),
    ('{"jsonrpc":"2.0","method":"core.ping","params":{},"id":4}',
     '{"jsonrpc":"2.0","error":{"code":-32600,"message":"\'params\' member must be of type array"},"id":4}'),
    # Any JSON number is an id, echoed exactly as sent.
    ('{"jsonrpc":"2.0","method":"core.ping","id":1.5}',
     '{"jsonrpc":"2.0","result":"pong","id":1.5}'),
    ('{"jsonrpc":"2.0","method":"core.ping","id":1e300}',
     '{"jsonrpc":"2.0","result":"pong","id":1e300}'),
    ('{"jsonrpc":"2.0","method":"core.ping","id":18446744073709551616}',
     '{"jsonrpc":"2.0","result":"pong","id":18446744073709551616}'),
    ('{"jsonrpc":"2.0","method":"core.ping","id":[1.5]}',
     '{"jsonrpc":"2.0","error":{"code":-32600,"message":"\'id\' member must be of type null, string or number"},"id":[1.5]}'),
    ('[{"jsonrpc":"2.0","method":"core.ping","id":1}]',
     '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Batch messages are not supported at this time"},"id":null}'),
    ('{"jsonrpc":"2.0","method":"no.such","id":6}',
     '{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method does not exist"},"id":6}'),
    ('{"jsonrpc":"2.0","method":"core.ping","id":7}',
     '{"jsonrpc":"2.0","result":"pong","id":7}'),
    ('{"jsonrpc":"2.0","method":"core.ping","id":"seven"}',
     '{"jsonrpc":"2.0","result":"pong","id":"seven"}'),
    ('{"jsonrpc":"2.0","method":"core.ping","id":null}',
     '{"jsonrpc":"2.0","result":"pong","id":null}'),
    ('{"jsonrpc":"2.0","method":"core.set_options","id":8,"params":[{"private_methods":true}]}',
     '{"jsonrpc":"2.0","result":null,"id":8}'),
    ('{"jsonrpc":"2.0","method":"auth.twofactor.update","id":9,"params":[{"otp_digits":5}]}',
     '{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":{"error":22,"errname":"EINVAL",'
     '"reason":"[EINVAL] auth_twofactor_update.otp_digits: Should be between 6 and 8\\n",'
     '"trace":{"class":"ValidationErrors","frames":[],'
     '"formatted":"ValidationErrors: [EINVAL] auth_twofactor_update.otp_digits: Should be between 6 and 8\\n",'
     '"repr":"ValidationErrors([ValidationError(\'auth_twofactor_update.otp_digits\', \'Should be between 6 and 8\', 22)])"},'
     '"extra":[["auth_twofactor_update.otp_digits","Should be between 6 and 8",22]]}},"id":9}'),
    ('{"jsonrpc":"2.0","method":"auth.twofactor.update","id":10,"params":[{"enable":true}]}',
     '{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":{"error":22,"errname":"EINVAL",'
     '"reason":"[EINVAL] auth_twofactor_update.enable: Field was not expected\\n",'
     '"trace":{"class":"ValidationErrors","frames":[],'
     '"formatted":"ValidationErrors: [EINVAL] auth_twofactor_update.enable: Field was not expected\\n",'
     '"repr":"ValidationErrors([ValidationError(\'auth_twofactor_update.enable\', \'Field was not expected\', 22)])"},'
     '"extra":[["auth_twofactor_update.enable","Field was not expected",22]]}},"id":10}'),
    ('{"jsonrpc":"2.0","method":"auth.twofactor.renew_secret","id":11}',
     '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Method call error","data":{"error":14,"errname":"EFAULT",'
     '"reason":"[EFAULT] Please enable Two Factor Authentication first.",'
     '"trace":{"class":"CallError","frames":[],'
     '"formatted":"CallError: [EFAULT] Please enable Two Factor Authentication first.",'
     '"repr":"CallError(\'Please enable Two Factor Authentication first.\', 14, None)"},"extra":null}},"id":11}'),
]

NOT_AUTHENTICATED = ('{"jsonrpc":"2.0","error":{"code":-32001,"message":"Method call error","data":{"error":207,'
                     '"errname":"ENOTAUTHENTICATED","reason":"[ENOTAUTHENTICATED] Not authenticated",'
                     '"trace":{"class":"CallError","frames":[],'
                     '"formatted":"CallError: [ENOTAUTHENTICATED] Not authenticated",'
                     '"repr":"CallError(\'Not authenticated\', 207, None)"},"extra":null}},"id":%s}')


def root_mode(a):
    ws = unix_ws(a.unix)

    for sent, want in ENVELOPE_CASES:
        ws.send(sent)
        eq(ws.recv(), want, "answer to %s" % sent)
    print("ok envelope and error objects, byte for byte")

    ws.send("{nope")
    got = json.loads(ws.recv())
    eq((got["error"]["code"], got["id"]), (-32700, None), "invalid JSON")
    check(got["error"]["message"].startswith("Invalid JSON"), got)
    print("ok parse error")

    # Notifications (no id) run and are not answered; invalid ones without
    # an id are ignored. The next answer is the ping's.
    ws.send('{"jsonrpc":"2.0","method":"core.ping"}')
    ws.send('{"jsonrpc":"2.0","method":"no.such"}')
    ws.send('{"method":"core.ping"}')
    ws.send('{"jsonrpc":"2.0","method":"core.ping","params":{}}')
    ws.send(req("core.ping", id=100))
    eq(ws.recv(), '{"jsonrpc":"2.0","result":"pong","id":100}', "only the call with an id is answered")
    print("ok notifications")

    # Missing params means [].
    ws.send('{"jsonrpc":"2.0","method":"auth.twofactor.config","id":12}')
    eq(json.loads(ws.recv())["result"]["id"], 1, "config without params")
    print("ok missing params")

    # Pings are answered.
    ws.ping(b"hello")
    op, data = ws.recv_data(control_frame=True)
    eq((op, data), (websocket.ABNF.OPCODE_PONG, b"hello"), "pong")
    print("ok ping/pong")

    # Out of order: a slow call (wrong password, ~1 s) then a fast one.
    ws.send(req("auth.login", id=200, params=["nosuchuser", "x"]))
    ws.send(req("core.ping", id=201))
    eq(json.loads(ws.recv())["id"], 201, "the fast call answers first")
    eq(ws.recv(), '{"jsonrpc":"2.0","result":false,"id":200}', "then the slow one")
    print("ok out of order")

    # More than 20 calls in flight.
    for i in range(25):
        ws.send(req("auth.login", id=300 + i, params=["nosuchuser%d" % i, "x"]))
    answers = [json.loads(ws.recv()) for _ in range(25)]
    refused = [m for m in answers if "error" in m]
    check(len(refused) >= 1, "no call was refused: %r" % answers)
    eq(len(answers) - len(refused), 20, "calls run")
    eq(json.dumps(refused[0], separators=(",", ":")),
       '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Maximum number of concurrent calls (20) has exceeded"},"id":%d}'
       % refused[0]["id"], "the -32000 answer")
    print("ok 20 in flight (%d refused)" % len(refused))

    # Events: subscribe, update, collection_update.
    sub = call(ws, "core.subscribe", ["auth.twofactor"], id=400)["result"]
    check(isinstance(sub, str) and sub, "subscription id")
    ws.send(req("auth.twofactor.update", id=401, params=[{"window": 2}]))
    msgs = [json.loads(ws.recv()) for _ in range(2)]
    result = [m for m in msgs if m.get("id") == 401][0]["result"]
    event = [m for m in msgs if "method" in m][0]
    eq(event, {"jsonrpc": "2.0", "method": "collection_update",
               "params": {"msg": "changed", "collection": "auth.twofactor", "id": 1, "fields": result}}, "event")
    eq(list(event["params"].keys()), ["msg", "collection", "id", "fields"], "event key order")
    eq(list(result.keys()), ["id", "otp_digits", "secret", "window", "interval", "services", "enabled"], "entry keys")
    ws.send(req("auth.twofactor.update", id=402, params=[{"window": 0}]))
    msgs = [json.loads(ws.recv()) for _ in range(2)]
    check({m.get("id") for m in msgs} == {402, None}, "answer and event: %r" % msgs)
    eq(call(ws, "core.unsubscribe", [sub], id=403), {"jsonrpc": "2.0", "result": None, "id": 403}, "unsubscribe")
    print("ok events")

    # 64 KiB after login passes; one byte more closes with 1009.
    base = req("core.ping", id=500, params=[""])
    pad = "x" * (65536 - len(base))
    ws.send(req("core.ping", id=500, params=[pad]))
    check("Too many arguments" in ws.recv(), "64 KiB message answered")
    ws.send(req("core.ping", id=501, params=[pad + "x"]))
    reason = expect_close(ws, 1009, "65537 bytes after login")
    print("ok 64 KiB limit (1009: %s)" % reason)

    ws = unix_ws(a.unix)
    ws.send_binary(b'{"jsonrpc":"2.0","method":"core.ping","id":1}')
    expect_close(ws, 1003, "binary frame")
    print("ok binary frame closes with 1003")

    # TCP before login.
    t = tcp_ws(a.tcp)
    t.send(req("auth.twofactor.config", id=1))
    eq(t.recv(), NOT_AUTHENTICATED % 1, "config over TCP before login")
    t.send(req("core.ping", id=2))
    eq(t.recv(), '{"jsonrpc":"2.0","result":"pong","id":2}', "ping over TCP")
    base = req("core.ping", id=3, params=[""])
    t.send(req("core.ping", id=3, params=["x" * (8192 - len(base))]))
    check("Too many arguments" in t.recv(), "8 KiB before login answered")
    t.send(req("core.ping", id=4, params=["x" * (8193 - len(base))]))
    reason = expect_close(t, 1007, "8193 bytes before login")
    print("ok 8 KiB limit before login (1007: %s)" % reason)

    # HTTP.
    def tcp_sock():
        host, port = a.tcp.rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=TIMEOUT)

    def unix_sock():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(a.unix)
        return s

    for connect in (tcp_sock, unix_sock):
        head, body = http_get(connect, "/api/versions")
        check(head.startswith("HTTP/1.1 200"), head)
        check("current" in json.loads(body), body)
        head, _ = http_get(connect, "/not/here")
        check(head.startswith("HTTP/1.1 404"), head)
    print("ok /api/versions and 404")


def nonroot_mode(a):
    check(os.getuid() != 0, "run this mode as a non-root uid")
    ws = unix_ws(a.unix)
    # A non-root peer with an account is logged in as itself with
    # a user's rights: its own two-factor settings, nothing of the system's.
    err = call(ws, "auth.twofactor.config", id=1)["error"]
    eq((err["code"], err["data"]["error"], err["data"]["reason"]),
       (-32001, 13, "[EACCES] Not authorized"), "config as a user")
    eq(call(ws, "core.ping", id=3)["result"], "pong", "ping")
    me = call(ws, "auth.me", id=4)["result"]
    import pwd
    own = pwd.getpwuid(os.getuid()).pw_name
    eq(me["pw_name"], own, "auth.me is the peer's own account")
    eq(me["privilege"]["roles"], [], "with a user's rights")
    cfg = call(ws, "user.twofactor_config", [own], id=8)["result"]
    eq(cfg["secret_configured"], False, "its own two-factor settings")
    print("ok non-root peer (uid %d) is logged in as %s with a user's rights" % (os.getuid(), own))
    if a.user:
        got = call(ws, "auth.login_ex", [{"mechanism": "PASSWORD_PLAIN", "username": a.user,
                                          "password": a.password}], id=5)["result"]
        eq(got["response_type"], "SUCCESS", "login over the socket")
        entry = call(ws, "auth.twofactor.config", id=6)
        check("result" in entry, "config after login: %r" % entry)
        me = call(ws, "auth.me", id=7)["result"]
        eq(me["pw_name"], a.user, "auth.me after login")
        print("ok after login as %s" % a.user)


def tcp_login_mode(a):
    """Password-and-code login over TCP with only websocket-client and oathtool."""
    import subprocess
    ws = tcp_ws(a.tcp)
    before = call(ws, "auth.twofactor.config", id=1)
    eq(before["error"]["code"], -32001, "config before login: code")
    eq(before["error"]["data"]["error"], 207, "config before login: errno")
    got = call(ws, "auth.login_ex", [{"mechanism": "PASSWORD_PLAIN", "username": a.user,
                                      "password": a.password}], id=2)["result"]
    eq(got, {"response_type": "OTP_REQUIRED", "username": a.user}, "password step")
    code = subprocess.run(["oathtool", "--totp", "-b", a.secret], check=True,
                          capture_output=True, text=True).stdout.strip()
    got = call(ws, "auth.login_ex_continue", [{"mechanism": "OTP_TOKEN", "otp_token": code}], id=3)["result"]
    eq(got["response_type"], "SUCCESS", "code step")
    eq(got["authenticator"], "LEVEL_1", "authenticator")
    entry = call(ws, "auth.twofactor.config", id=4)["result"]
    eq(list(entry), ["id", "otp_digits", "secret", "window", "interval", "services", "enabled"], "entry keys")
    check(isinstance(entry["secret"], str) and entry["secret"] != a.secret,
          "the entry's secret is root's, not the user's own")
    eq(entry["enabled"], True, "enabled")
    uri = call(ws, "user.provisioning_uri", [a.user], id=5)["result"]
    check("secret=%s&" % a.secret in uri, "the user's own secret is the one asked: %r" % uri)
    print("ok TCP: 207 before login, OTP_REQUIRED, SUCCESS with an oathtool code of the user's own secret")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["root", "nonroot", "tcp-login"], required=True)
    p.add_argument("--unix")
    p.add_argument("--secret")
    p.add_argument("--tcp")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    started = time.monotonic()
    if a.mode == "root":
        root_mode(a)
    elif a.mode == "tcp-login":
        tcp_login_mode(a)
    else:
        nonroot_mode(a)
    print("all checks passed in %.1f s" % (time.monotonic() - started))


if __name__ == "__main__":
    main()
