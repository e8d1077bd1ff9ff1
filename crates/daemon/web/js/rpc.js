// The JSON-RPC 2.0 client over the daemon's WebSocket (/api/current on
// this page's own origin): calls return promises; `collection_update`
// notifications go to the event listener.

export class RpcError extends Error {
  constructor(error) {
    const data = error.data || {};
    super(data.reason ? String(data.reason).replace(/^\[[A-Z]+\]\s*/, "").trim() : error.message);
    this.code = error.code;
    this.errname = data.errname || "";
    this.extra = Array.isArray(data.extra) ? data.extra : [];
  }
}

export class Rpc {
  constructor() {
    this.next = 1;
    this.waiting = new Map();
    this.onEvent = () => {};
    this.onClose = () => {};
    this.ws = null;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${scheme}://${location.host}/api/current`);
      let open = false;
      ws.addEventListener("open", () => {
        open = true;
        this.ws = ws;
        resolve();
      });
      ws.addEventListener("message", (e) => this.receive(e.data));
      ws.addEventListener("close", () => {
        for (const { reject: fail } of this.waiting.values()) {
          fail(new Error("The connection to the server was lost."));
        }
        this.waiting.clear();
        if (open) {
          this.onClose();
        } else {
          reject(new Error("Cannot reach the server."));
        }
      });
    });
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.method === "collection_update" && msg.params) {
      this.onEvent(msg.params);
      return;
    }
    const waiter = this.waiting.get(msg.id);
    if (!waiter) {
      return;
    }
    this.waiting.delete(msg.id);
    if (msg.error) {
      waiter.reject(new RpcError(msg.error));
    } else {
      waiter.resolve(msg.result);
    }
  }

  call(method, params = []) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("Not connected to the server."));
    }
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  close() {
    if (this.ws) {
      this.ws.close();
    }
  }
}
