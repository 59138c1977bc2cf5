/**
 * Envelope unwrapping, status details and the shipped retry policy, without a server.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorSchema } from "../src/gen/loansuite/common/v1/error_pb.js";
import { CreateLoanResponseSchema, LoanSchema } from "../src/gen/loansuite/loans/v1/loan_service_pb.js";
import { ErrorCode, LoansuiteError, READ_METHODS, decodeRetryInfo, unwrap } from "../src/index.js";

test("unwrap returns the payload or throws the envelope's error", () => {
  const loan = create(LoanSchema, { id: "L1", name: "Solar" });
  assert.equal(unwrap(create(CreateLoanResponseSchema, { result: { case: "loan", value: loan } })).id, "L1");
  const error = create(ErrorSchema, {
    code: ErrorCode.NOT_FOUND,
    reason: "LOAN_NOT_FOUND",
    message: "no such loan",
    requestId: "r-1",
  });
  const failed = create(CreateLoanResponseSchema, { result: { case: "error", value: error } });
  assert.throws(
    () => unwrap(failed),
    (err: unknown) =>
      err instanceof LoansuiteError &&
      err.codeName === "NOT_FOUND" &&
      err.reason === "LOAN_NOT_FOUND" &&
      err.requestId === "r-1" &&
      err.status === undefined,
  );
  assert.throws(() => unwrap(create(CreateLoanResponseSchema)), /neither a result nor an error/);
});

test("a status carries the Error and the retry delay as details", () => {
  const error = create(ErrorSchema, { code: ErrorCode.RESOURCE_EXHAUSTED, reason: "LOGIN_THROTTLED" });
  // google.rpc.RetryInfo { retry_delay: Duration { seconds: 3, nanos: 250_000_000 } }
  const retryInfo = new Uint8Array([0x0a, 0x07, 0x08, 0x03, 0x10, 0x80, 0xe5, 0x9a, 0x77]);
  // As the transport stores details parsed from the wire: type name and bytes.
  const status = new ConnectError("throttled", Code.ResourceExhausted);
  status.details.push(
    { type: "loansuite.common.v1.Error", value: toBinary(ErrorSchema, error) },
    { type: "google.rpc.RetryInfo", value: retryInfo },
  );
  const found = LoansuiteError.fromConnectError(status);
  assert.ok(found);
  assert.equal(found.reason, "LOGIN_THROTTLED");
  assert.equal(found.status, Code.ResourceExhausted);
  assert.equal(found.retryAfterMs, 3250);
  assert.equal(decodeRetryInfo(new Uint8Array()), undefined);
  assert.equal(LoansuiteError.fromConnectError(new ConnectError("gone", Code.Unavailable)), undefined);
});

test("the retry interceptor and the shipped service config name the same read methods", () => {
  const path = resolve(import.meta.dirname, "..", "..", "..", "service-config.json");
  const config = JSON.parse(readFileSync(path, "utf8")) as {
    methodConfig: { name: { service: string; method: string }[]; retryPolicy: { retryableStatusCodes: string[] } }[];
  };
  const [policy] = config.methodConfig;
  assert.ok(policy);
  assert.deepEqual(policy.retryPolicy.retryableStatusCodes, ["UNAVAILABLE"]);
  const named = new Set(policy.name.map((n) => `${n.service}/${n.method}`));
  assert.deepEqual([...named].sort(), [...READ_METHODS].sort());
});
