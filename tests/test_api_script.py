"""`Tagger.tag_many(workers=N)` from a plain script, as the README's snippet is used: without
`if __name__ == "__main__":` it fails at once with one message in the API's terms."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import soundfile

from tests.support import DYMN04_WEIGHTS, SAFETY_NET

WEIGHTS = str(DYMN04_WEIGHTS)


def test_tag_many_with_workers_in_an_unguarded_script_says_what_to_add(tmp_path):
    clips = []
    for n in range(2):
        clips.append(tmp_path / f"{n}.wav")
        soundfile.write(clips[-1], np.zeros(16_000, np.float32), 16_000)
    script = tmp_path / "tag_folder.py"
    script.write_text(
        textwrap.dedent(f"""
        from dymn_cli import Tagger

        tagger = Tagger(weights={WEIGHTS!r}, device="cpu")
        for result in tagger.tag_many({[str(c) for c in clips]!r}, workers=2):
            print(result.source)
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=SAFETY_NET, cwd=tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dymn_cli.inference.script_rerun.ScriptRerunInWorkers: tag_many(workers=N)")
    assert 'if __name__ == "__main__":' in last and "workers=0" in last and "--workers" not in last
    assert done.stderr.count("Traceback") == 1  # the script's own; none from the workers, which exit quietly
    assert done.stdout == ""
