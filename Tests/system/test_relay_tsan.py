"""ThreadSanitizer run of the relay's worker/queue code: the IO thread, event-loop and
relay forwarding tests (worker threads + SPSC control plane) built with
--sanitize=thread in their own scratch directory (.build-tsan)."""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_relay_workers_and_queues_under_thread_sanitizer():
    command = ["swift", "test", "-c", "debug", "--sanitize=thread", "--scratch-path", str(ROOT / ".build-tsan"),
               "--filter", "IOTests.ThreadTests|IOTests.EventLoopTests|RelayTests.ForwardingTests|RelayTests.SinkLegTests"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    output = result.stdout + result.stderr
    assert "ThreadSanitizer" not in output, output[-8000:]
    assert result.returncode == 0, output[-8000:]
    assert "passed after" in output and "Test run with" in output, output[-4000:]
