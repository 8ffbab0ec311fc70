"""Running the `gqa` binary from the example scripts: one place for the error handling and the
held-out perplexity measure they share."""
import json
import subprocess
import sys
import time


class Gqa:
    def __init__(self, binary):
        self.binary = binary

    def __call__(self, *args):
        """Runs `gqa ARGS`; exits with its output when it fails. Returns (stdout, seconds)."""
        t0 = time.time()
        r = subprocess.run([self.binary, *args], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"gqa {' '.join(args)}\n{r.stdout}\n{r.stderr}")
        return r.stdout, time.time() - t0

    def held_out(self, model, text, tokens=65536, context=128):
        """Perplexity record of `model` on `text`, in windows of the training length with half-window
        strides (longer windows would measure RoPE extrapolation past the trained positions)."""
        out, _ = self("eval", model, "--text", text, "--max-tokens", str(tokens), "--context", str(context),
                      "--stride", str(context // 2), "--json")
        return json.loads(out.splitlines()[-1])
