// Sign in, seal a request with the npm `jose` package, call /predict/digits, open the sealed reply.
// Settings: TORCHGATE_URL, TORCHGATE_USERNAME, TORCHGATE_PASSWORD, TORCHGATE_KID, TORCHGATE_KEY.
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

// 2. Seal {"inputs": [...]} as a JWE: alg "dir", enc "A256GCM", the key id and iat protected.
const request = { inputs: [Array(64).fill(0.5)] };
const sealed = await new FlattenedEncrypt(new TextEncoder().encode(JSON.stringify(request)))
  .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid, iat: Math.floor(Date.now() / 1000) })
  .encrypt(key);

// 3. Call the model.
const answer = await fetch(`${url}/predict/digits`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/jose+json" },
  body: JSON.stringify(sealed),
});
if (!answer.ok) throw new Error(`predict: ${answer.status} ${await answer.text()}`);

// 4. Open the sealed reply: only dir + A256GCM, only our key id, only a fresh iat.
const { plaintext, protectedHeader } = await flattenedDecrypt(await answer.json(), key, {
  keyManagementAlgorithms: ["dir"],
  contentEncryptionAlgorithms: ["A256GCM"],
});
if (protectedHeader.kid !== kid) throw new Error("reply sealed with another key");
if (Math.abs(Date.now() / 1000 - protectedHeader.iat) > 300) throw new Error("stale reply");
const result = JSON.parse(new TextDecoder().decode(plaintext));
console.log(JSON.stringify({ model: result.model, version: result.version, labels: result.labels }));
