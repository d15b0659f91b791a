// A network between the client and the server that loses answers: the server gets and acts on the request, the
// client sees the connection drop.
import { createServer, request } from "node:http";

/**
 * Forwards everything to `target`; for the first request `lose(request)` picks, reads the server's whole answer,
 * keeps it in `lost`, and destroys the client's socket instead of answering.
 */
export async function lossyProxy(target, lose) {
  const upstream = new URL(target);
  const lost = [];
  const server = createServer((incoming, outgoing) => {
    const chunks = [];
    incoming.on("data", (chunk) => chunks.push(chunk));
    incoming.on("end", () => {
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
            if (lost.length === 0 && lose(incoming)) {
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
    close: () => new Promise((done) => server.close(done)),
  };
}
