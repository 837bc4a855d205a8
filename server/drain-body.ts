/**
 * Reads and drops what is left of an oversized request body before the 413
 * goes out. An HTTP client that is still uploading when the server answers and
 * closes (Node's fetch, so the official SDK) fails with EPIPE instead of
 * reading the 413; node-server cuts an unread body after 500 ms. Reading the
 * rest lets the client finish its upload and see the error. Past `capBytes`
 * the read stops: a client sending gigabytes gets the connection error.
 */
export async function drainBody(req: Request, capBytes: number): Promise<void> {
  const body = req.body;
  if (body === null || body.locked) return; // nothing sent, or the limit's own reader holds it
  const reader = body.getReader();
  let read = 0;
  try {
    while (read <= capBytes) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
  } catch {
    return; // the client gave up first: nothing left to drain
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
