// codepipeline-local's bootstrap for nodejs runtimes: loads the handler (_HANDLER, file.function)
// from LAMBDA_TASK_ROOT (.js, .cjs or .mjs) and serves invocations through the Lambda Runtime API.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const { pathToFileURL } = require('url');

// Errors and output share one stream, in order, as in a function's log.
process.stderr.write = process.stdout.write.bind(process.stdout);

// Everything the invocation printed is out: the server files it under this request.
function done(id) {
  process.stdout.write('\x1eend ' + id + '\n');
}

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const slash = api.indexOf('/');
const hostPort = slash < 0 ? api : api.slice(0, slash);
const prefix = slash < 0 ? '' : api.slice(slash);
const colon = hostPort.lastIndexOf(':');
const hostname = hostPort.slice(0, colon);
const port = Number(hostPort.slice(colon + 1));

function call(method, route, body, headers) {
  return new Promise((resolve, reject) => {
    const request = http.request({
      hostname, port, method, agent: false,
      path: prefix + '/2018-06-01/runtime' + route,
      headers: Object.assign({ 'content-type': 'application/json' }, headers || {}),
    }, (response) => {
      const chunks = [];
      response.on('data', (c) => chunks.push(c));
      response.on('end', () => resolve({ headers: response.headers, body: Buffer.concat(chunks) }));
    });
    request.on('error', reject);
    if (body !== undefined) request.write(body);
    request.end();
  });
}

function errorBody(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  return JSON.stringify({
    errorType: e.name || 'Error',
    errorMessage: e.message,
    trace: String(e.stack || '').split('\n'),
  });
}

async function load() {
  const handler = process.env._HANDLER;
  const dot = handler.lastIndexOf('.');
  const file = handler.slice(0, dot);
  const name = handler.slice(dot + 1);
  const root = process.env.LAMBDA_TASK_ROOT;
  for (const ext of ['.js', '.cjs', '.mjs']) {
    const full = path.join(root, file + ext);
    if (!fs.existsSync(full)) continue;
    let mod;
    try {
      mod = require(full);
    } catch (e) {
      if (e.code !== 'ERR_REQUIRE_ESM') throw e;
      mod = await import(pathToFileURL(full).href);
    }
    const fn = mod[name] || (mod.default && mod.default[name]);
    if (typeof fn !== 'function') {
      const e = new Error(`${file}.${name} is undefined or not exported`);
      e.name = 'Runtime.HandlerNotFound';
      throw e;
    }
    return fn;
  }
  const e = new Error(`Cannot find module '${file}'`);
  e.name = 'Runtime.ImportModuleError';
  throw e;
}

function invoke(handler, event, context) {
  return new Promise((resolve, reject) => {
    const done = (error, value) => (error ? reject(error) : resolve(value));
    try {
      const result = handler(event, context, done);
      if (result && typeof result.then === 'function') result.then(resolve, reject);
      else if (handler.length < 3) resolve(result);
    } catch (e) {
      reject(e);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await load();
  } catch (e) {
    console.error(e);
    await call('POST', '/init/error', errorBody(e), { 'Lambda-Runtime-Function-Error-Type': e.name });
    process.exit(1);
  }
  for (;;) {
    const next = await call('GET', '/invocation/next');
    const id = next.headers['lambda-runtime-aws-request-id'];
    const deadline = Number(next.headers['lambda-runtime-deadline-ms'] || 0);
    const context = {
      awsRequestId: id,
      invokedFunctionArn: next.headers['lambda-runtime-invoked-function-arn'],
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      callbackWaitsForEmptyEventLoop: true,
    };
    try {
      const text = next.body.toString();
      const result = await invoke(handler, text ? JSON.parse(text) : null, context);
      done(id);
      await call('POST', `/invocation/${id}/response`, JSON.stringify(result === undefined ? null : result));
    } catch (e) {
      console.error(e);
      done(id);
      await call('POST', `/invocation/${id}/error`, errorBody(e), { 'Lambda-Runtime-Function-Error-Type': 'Unhandled' });
    }
  }
}

main();
