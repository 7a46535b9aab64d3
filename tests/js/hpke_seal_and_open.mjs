// Seal a request to the gateway's public key with the npm @hpke packages (docs/envelope-hpke.md),
// call /predict/digits, open the sealed reply with the key exported from the HPKE context.
// Settings: TORCHGATE_URL, TORCHGATE_USERNAME, TORCHGATE_PASSWORD, and TORCHGATE_HPKE_ALG:
// HPKE-XWING-SHA256-A256GCM (the default) or HPKE-3 (X25519).
import { createHash } from "node:crypto";
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { XWing } from "@hpke/hybridkem-x-wing";
import { base64url, flattenedDecrypt } from "jose";

const env = process.env;
const url = env.TORCHGATE_URL ?? "http://127.0.0.1:8000";
const alg = env.TORCHGATE_HPKE_ALG ?? "HPKE-XWING-SHA256-A256GCM";
const suites = {
  "HPKE-XWING-SHA256-A256GCM": () => new CipherSuite({ kem: new XWing(), kdf: new HkdfSha256(),
                                                       aead: new Aes256Gcm() }),
  "HPKE-3": () => new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(),
                                    aead: new Aes128Gcm() }),
};
const ascii = (text) => new TextEncoder().encode(text);

// 1. The gateway's current key of that algorithm (pin the key set in a real client: §6).
const jwks = await (await fetch(`${url}/.well-known/jwks.json`)).json();
const jwk = jwks.keys.find((key) => key.use === "enc" && key.alg === alg);
if (jwk === undefined) throw new Error(`the gateway publishes no ${alg} key`);

// 2. An access token: the OAuth 2.0 password grant.
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

// 3. Seal {"inputs": [...]}: a fresh HPKE context (base mode, empty info) for every request,
//    aad = ASCII(protected), the token bound by `ath`, the reply key exported.
const suite = suites[alg]();
const sender = await suite.createSenderContext({
  recipientPublicKey: await suite.kem.deserializePublicKey(base64url.decode(jwk.pub ?? jwk.x)),
});
const ath = base64url.encode(createHash("sha256").update(token, "ascii").digest());
const header = { alg, kid: jwk.kid, iat: Math.floor(Date.now() / 1000), ath,
                 typ: "torchgate-request+jwe" };
const protectedHeader = base64url.encode(JSON.stringify(header));
const request = { inputs: [Array(64).fill(0.5)] };
const ciphertext = await sender.seal(ascii(JSON.stringify(request)), ascii(protectedHeader));
const replyKey = new Uint8Array(await sender.export(ascii("torchgate hpke reply v1"), 32));
const sent = JSON.stringify({ protected: protectedHeader,
                              encrypted_key: base64url.encode(new Uint8Array(sender.enc)),
                              ciphertext: base64url.encode(new Uint8Array(ciphertext)) });

// 4. Call the model.
const answer = await fetch(`${url}/predict/digits`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/jose+json" },
  body: sent,
});
if (!answer.ok) throw new Error(`predict: ${answer.status} ${await answer.text()}`);

// 5. Open the reply: a dir/A256GCM JWE under the exported key, our kid, a fresh iat, a reply
//    (typ) to the very body we sent (req_sha256), all authenticated by the AEAD.
const reply = await flattenedDecrypt(await answer.json(), replyKey, {
  keyManagementAlgorithms: ["dir"],
  contentEncryptionAlgorithms: ["A256GCM"],
});
if (reply.protectedHeader.kid !== jwk.kid) throw new Error("reply sealed with another key");
if (Math.abs(Date.now() / 1000 - reply.protectedHeader.iat) > 300) throw new Error("stale reply");
if (reply.protectedHeader.typ !== "torchgate-reply+jwe") throw new Error("not a reply");
const digest = createHash("sha256").update(sent).digest("hex");
if (reply.protectedHeader.req_sha256 !== digest) throw new Error("reply to another request");
const result = JSON.parse(new TextDecoder().decode(reply.plaintext));
console.log(JSON.stringify({ model: result.model, version: result.version, labels: result.labels }));
