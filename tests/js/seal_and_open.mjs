// Sign in, seal a request with the npm `jose` package, call /predict/digits, open the sealed reply.
// Settings: TORCHGATE_URL, TORCHGATE_USERNAME, TORCHGATE_PASSWORD, TORCHGATE_KID, TORCHGATE_KEY.
import { createHash } from "node:crypto";
import { FlattenedEncrypt, base64url, flattenedDecrypt } from "jose";

const env = process.env;
const url = env.TORCHGATE_URL ?? "http://127.0.0.1:8000";
const key = base64url.decode(env.TORCHGATE_KEY.replace(/=+$/, "")); // the 32-byte payload key
const kid = env.TORCHGATE_KID;

// 1. An access token: the OAuth 2.0 password grant.
const tokenAnswer = await fetch(`${url}/auth/token`, {
  method: "POST",
  body: new URLSearchParams({
    grant_type: "password",
    username: env.TORCHGATE_USERNAME,
    password: env.TORCHGATE_PASSWORD,
  }),
});
if (!tokenAnswer.ok) throw new Error(`token: ${tokenAnswer.status} ${await tokenAnswer.text()}`);
const { access_token: token } = await tokenAnswer.json();

// 2. Seal {"inputs": [...]} as a JWE: alg "dir", enc "A256GCM", the key id, iat and the
//    request direction (typ) protected.
const request = { inputs: [Array(64).fill(0.5)] };
const sealed = await new FlattenedEncrypt(new TextEncoder().encode(JSON.stringify(request)))
  .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid, iat: Math.floor(Date.now() / 1000),
                        typ: "torchgate-request+jwe" })
  .encrypt(key);
const sent = JSON.stringify(sealed);

// 3. Call the model.
const answer = await fetch(`${url}/predict/digits`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/jose+json" },
  body: sent,
});
if (!answer.ok) throw new Error(`predict: ${answer.status} ${await answer.text()}`);

// 4. Open the sealed reply: only dir + A256GCM, only our key id, only a fresh iat, and only a
//    reply (typ) to the very body we sent (req_sha256), all authenticated by the AEAD.
const { plaintext, protectedHeader } = await flattenedDecrypt(await answer.json(), key, {
  keyManagementAlgorithms: ["dir"],
  contentEncryptionAlgorithms: ["A256GCM"],
});
if (protectedHeader.kid !== kid) throw new Error("reply sealed with another key");
if (Math.abs(Date.now() / 1000 - protectedHeader.iat) > 300) throw new Error("stale reply");
if (protectedHeader.typ !== "torchgate-reply+jwe") throw new Error("not a reply");
const digest = createHash("sha256").update(sent).digest("hex");
if (protectedHeader.req_sha256 !== digest) throw new Error("reply to another request");
const result = JSON.parse(new TextDecoder().decode(plaintext));
console.log(JSON.stringify({ model: result.model, version: result.version, labels: result.labels }));
