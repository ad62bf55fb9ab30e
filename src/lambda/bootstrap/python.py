# codepipeline-local's bootstrap for python runtimes: loads the handler (_HANDLER, module.function)
# from LAMBDA_TASK_ROOT and serves invocations through the Lambda Runtime API.
import importlib
import json
import os
import sys
import time
import traceback
import urllib.request

# Errors and output share one stream, in order, as in a function's log.
os.dup2(1, 2)
sys.stderr = sys.stdout

BASE = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
# The Runtime API is on this machine: never through a proxy.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(path, body, error_type=None):
    headers = {"Content-Type": "application/json"}
    if error_type:
        headers["Lambda-Runtime-Function-Error-Type"] = error_type
    request = urllib.request.Request(BASE + path, data=body, method="POST", headers=headers)
    OPENER.open(request).read()


def done(request_id):
    # Everything the invocation printed is out: the server files it under this request.
    sys.stdout.write("\x1eend " + request_id + "\n")
    sys.stdout.flush()


def error_body(error, request_id=""):
    return json.dumps({
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }).encode()


class Context:
    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def load():
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    return getattr(module, function_name)


def main():
    try:
        handler = load()
    except Exception as error:
        traceback.print_exc()
        module = os.environ["_HANDLER"].rpartition(".")[0]
        post("/init/error", json.dumps({
            "errorMessage": "Unable to import module '" + module + "': " + str(error),
            "errorType": "Runtime.ImportModuleError",
            "requestId": "",
            "stackTrace": [],
        }).encode(), "Runtime.ImportModuleError")
        sys.exit(1)
    while True:
        with OPENER.open(BASE + "/invocation/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline = int(response.headers.get("Lambda-Runtime-Deadline-Ms", "0"))
            arn = response.headers.get("Lambda-Runtime-Invoked-Function-Arn")
            raw = response.read()
        try:
            event = json.loads(raw) if raw else None
            result = handler(event, Context(request_id, deadline, arn))
            body = json.dumps(result).encode()
        except Exception as error:
            traceback.print_exc()
            done(request_id)
            post("/invocation/" + request_id + "/error", error_body(error, request_id), "Unhandled")
            continue
        done(request_id)
        post("/invocation/" + request_id + "/response", body)


main()
