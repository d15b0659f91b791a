// A network between the client and the server that misbehaves once per fault, then forwards as usual.
import { createServer, request } from "node:http";

/**
 * Forwards everything to `target`. Each fault `{ match(request), fault }` applies once, to the first request it
 * matches: "lose-answer" forwards the request, reads the server's whole answer into `lost` and destroys the
 * client's socket instead of answering (the server acted, the client sees the connection drop); "hang" never
 * answers; `{ status, headers }` answers that itself without forwarding.
 */
export async function faultyProxy(target, faults) {
  const upstream = new URL(target);
  const waiting = [...faults];
  const lost = [];
  const answered = [];
  const server = createServer((incoming, outgoing) => {
    const chunks = [];
    incoming.on("data", (chunk) => chunks.push(chunk));
    incoming.on("end", () => {
      const at = waiting.findIndex((fault) => fault.match(incoming));
      const fault = at < 0 ? undefined : waiting.splice(at, 1)[0].fault;
      if (fault === "hang") return;
      if (typeof fault === "object") {
        answered.push(fault.status);
        outgoing.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
        outgoing.end(JSON.stringify({ detail: [{ type: "injected", loc: [], msg: "injected by the test" }] }));
        return;
      }
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: incoming.method,
          path: incoming.url,
          headers: { ...incoming.headers, host: upstream.host },
        },
        (answer) => {
          const body = [];
          answer.on("data", (chunk) => body.push(chunk));
          answer.on("end", () => {
            const text = Buffer.concat(body).toString("utf8");
            if (fault === "lose-answer") {
              lost.push({ status: answer.statusCode, body: JSON.parse(text) });
              incoming.socket.destroy();
              return;
            }
            outgoing.writeHead(answer.statusCode, answer.headers);
            outgoing.end(text);
          });
        },
      );
      forward.on("error", () => incoming.socket.destroy());
      forward.end(Buffer.concat(chunks));
    });
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    lost,
    answered,
    unused: () => waiting.length,
    close: () => {
      server.closeAllConnections();
      return new Promise((done) => server.close(done));
    },
  };
}
