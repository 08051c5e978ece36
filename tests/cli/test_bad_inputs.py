"""The contract of every command with bad input: exit code 2, one line on stderr, no
traceback, nothing written.

Each case runs ``ddjax.cli.main.main`` in-process and fails before anything is compiled, so
the whole table runs in seconds. Filesystem faults are injected at the system call
(``os.open``, ``os.mkdir``, ``os.write``): the tests run as root, and chmod does not stop
root. A command added later adds its rows here.
"""

import errno
import json
import os
import pathlib
import subprocess

import jax
import numpy as np
import pytest
import soundfile as sf
from conftest import BUNDLED_KIT
from flax import serialization

from ddjax.cli.main import main
from ddjax.core.critic import CriticConfig, HeadConfig, init_critic
from ddjax.io.critics import save_critic

LOOP = {"grid": [[1, 0] * 8, [0, 1] * 8, [1] * 16, [0] * 15 + [1]],
        "samples": ["kick/kick_01.wav", "snare/snare_01.wav", "closed_hat/closed_hat_01.wav",
                    "clap/clap_01.wav"], "bpm": 120}


def _zeros_critic(config: CriticConfig) -> dict:
    shapes = jax.eval_shape(lambda: init_critic(jax.random.key(0), config))
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def _loop_file(path: pathlib.Path, **changes) -> None:
    path.write_text(json.dumps({**LOOP, **changes}))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    """Every input the table names, made once; the cases only read them."""
    w = tmp_path_factory.mktemp("world")
    (w / "afile").write_text("a file, not a folder")
    (w / "adir").mkdir()
    (w / "adir.wav").mkdir()  # a folder with a file's name
    (w / "ro").mkdir()
    (w / "forbidden").mkdir()
    _loop_file(w / "loop.json")
    _loop_file(w / "nine.json", grid=[[1] * 16] * 9, samples=LOOP["samples"] * 2 + ["x.wav"])
    _loop_file(w / "long.json", grid=[[1, 0] * 50000] * 4)
    _loop_file(w / "ragged.json", grid=[[1] * 16, [1] * 15, [1] * 16, [1] * 16])
    _loop_file(w / "values.json", grid=[[2] * 16] * 4)
    _loop_file(w / "empty_grid.json", grid=[])
    _loop_file(w / "few_samples.json", samples=LOOP["samples"][:3])
    _loop_file(w / "bpm_text.json", bpm="fast")
    _loop_file(w / "bpm_high.json", bpm=500)
    _loop_file(w / "bpm_low.json", bpm=10)
    _loop_file(w / "foreign.json", samples=LOOP["samples"][:3] + ["nope/missing.wav"])
    (w / "malformed.json").write_text("{not json")
    (w / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (w / "digits.json").write_text('{"grid": [[1]], "samples": ["a"], "bpm": 1' + "0" * 5000
                                   + "}")
    (w / "loops_one_bad").mkdir()
    _loop_file(w / "loops_one_bad" / "good.json")
    (w / "loops_one_bad" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (w / "list.json").write_text("[1, 2, 3]")
    (w / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (w / "bad_prior.json").write_text('{"format": "ddjax-taste-prior", "version": 1}')
    save_critic(w / "ok.critic", _zeros_critic(CriticConfig()), CriticConfig())
    save_critic(w / "mfcc40.critic", _zeros_critic(CriticConfig(n_mfcc=40)),
                CriticConfig(n_mfcc=40))
    save_critic(w / "hidden.critic", _zeros_critic(CriticConfig(hidden=64)), CriticConfig())
    save_critic(w / "sr48k.critic", _zeros_critic(CriticConfig()), CriticConfig(), sr=48000)
    (w / "garbage.critic").write_bytes(b"\x93 not msgpack at all")
    nan = _zeros_critic(CriticConfig())
    nan = jax.tree_util.tree_map(lambda x: np.full_like(x, np.nan)
                                 if np.issubdtype(x.dtype, np.floating) else x, nan)
    save_critic(w / "nan.critic", nan, CriticConfig())
    for name, change in (("list_config", {"config": "[1, 2]"}), ("no_variables",
                                                                 {"variables": None})):
        payload = serialization.msgpack_restore((w / "ok.critic").read_bytes())
        payload.update(change)
        if change.get("variables", 0) is None:
            del payload["variables"]
        (w / f"{name}.critic").write_bytes(serialization.msgpack_serialize(payload))
    (w / "no_critics").mkdir()
    (w / "mixed_critics").mkdir()  # a head critic (the default learner's) and a CNN
    save_critic(w / "mixed_critics" / "a.critic", init_critic(jax.random.key(0), HeadConfig()),
                HeadConfig())
    save_critic(w / "mixed_critics" / "b.critic", _zeros_critic(CriticConfig()), CriticConfig())
    (w / "tiny_kit").mkdir()
    for i in range(2):
        sf.write(w / "tiny_kit" / f"s{i}.wav", np.linspace(0.5, 0.0, 300), 44100)
    (w / "text_kit").mkdir()
    (w / "text_kit" / "notes.txt").write_text("no audio here")
    (w / "bad_session").mkdir()
    (w / "bad_session" / "session.json").write_text("{torn")
    (w / "no_results").mkdir()
    (w / "bad_results" / "run").mkdir(parents=True)
    (w / "bad_results" / "run" / "result.json").write_text('{"theta_init": 0.5}')
    (w / "results" / "run").mkdir(parents=True)
    (w / "results" / "run" / "result.json").write_text(json.dumps(
        {"rater": "r", "seed": 0, "theta_init": 0.4, "theta_final": 0.6, "delta": 0.2}))
    for field, value in (("bpm", "fast"), ("tracks", [4]), ("session", "oops"), ("kit", 5)):
        (w / f"meta_{field}").mkdir()  # session.json damaged by hand (issue 27)
        (w / f"meta_{field}" / "session.json").write_text(json.dumps(
            {"kit": str(BUNDLED_KIT), "seed": 0, "bpm": 120.0, "tracks": 4, field: value}))
    paths = {p.name.replace(".", "_"): str(p) for p in w.iterdir()}
    return {**paths, "world": str(w), "kit": str(BUNDLED_KIT)}


# (id, argv with {placeholders} from `world` (dots as _), a fault to inject or None, expected text)
# A fault is (folder name in `world`, errno): os.open/os.mkdir under it fails, or
# ("*write*", errno): every os.write fails.
CASES = [
    # generate
    ("gen-n-zero", "generate --n 0 --out {adir}", None, "positive"),
    ("gen-n-negative", "generate --n -3 --out {adir}", None, "positive"),
    ("gen-n-text", "generate --n many --out {adir}", None, "invalid"),
    ("gen-chains-zero", "generate --chains 0 --out {adir}", None, "positive"),
    ("gen-iters-negative", "generate --iters -1 --out {adir}", None, "0 to 1,000,000, got -1"),
    ("gen-iters-huge", "generate --iters 2147483648 --out {adir}", None, "0 to 1,000,000"),
    ("gen-seed-huge", "generate --seed 18446744073709551616 --out {adir}", None,
     "0 to 4294967295 (32 bits)"),
    ("gen-seed-negative", "generate --seed -1 --out {adir}", None, "0 to 4294967295"),
    ("exp-seeds-huge", "experiment --rater all --seeds 99999999 --out {adir}", None,
     "1 to 1,000,000"),
    ("gen-temperature-zero", "generate --temperature 0 --out {adir}", None, "positive"),
    ("gen-temperature-nan", "generate --temperature nan --out {adir}", None, "positive"),
    ("gen-min-score-above-1", "generate --min-score 1.5 --out {adir}", None, "[0, 1]"),
    ("gen-climb-below-0", "generate --climb -0.1 --out {adir}", None, "[0, 1]"),
    ("gen-bpm-low", "generate --bpm 59 --out {adir}", None, "60 to 200"),
    ("gen-bpm-high", "generate --bpm 201 --out {adir}", None, "60 to 200"),
    ("gen-bpm-text", "generate --bpm fast --out {adir}", None, "invalid"),
    ("gen-no-out", "generate", None, "--out"),
    ("gen-unknown-flag", "generate --frobnicate --out {adir}", None, "unrecognized"),
    ("gen-out-is-a-file", "generate --out {afile}", None, "is a file; pass a folder"),
    ("gen-out-under-a-file", "generate --out {afile}/loops", None, "is a file, not a folder"),
    ("gen-out-read-only", "generate --out {ro}/loops", ("ro", errno.EROFS),
     "read-only file system"),
    ("gen-out-forbidden", "generate --out {forbidden}", ("forbidden", errno.EACCES),
     "permission denied"),
    ("gen-kit-missing", "generate --kit {world}/nokit --out {adir}", None, "does not exist"),
    ("gen-kit-is-a-file", "generate --kit {afile} --out {adir}", None, "not a folder"),
    ("gen-kit-too-small", "generate --kit {tiny_kit} --out {adir}", None, "at least 4"),
    ("gen-kit-no-audio", "generate --kit {text_kit} --out {adir}", None, "0 usable"),
    ("gen-critic-missing", "generate --critic {world}/none.critic --out {adir}", None,
     "none.critic"),
    ("render-json-deep", "render {deep_json} --out {world}/deep.wav", None,
     "nested too deeply"),
    ("render-json-digits", "render {digits_json} --out {world}/digits.wav", None,
     "not valid JSON"),
    ("export-json-deep", "export {deep_json} --out {world}/deep", None, "nested too deeply"),
    ("gen-from-json-deep", "generate --from {deep_json} --out {adir}", None,
     "nested too deeply"),
    ("gen-critic-garbage", "generate --critic {garbage_critic} --out {adir}", None,
     "not a ddjax critic"),
    ("gen-critic-mixed-kinds", "generate --critic {mixed_critics} --out {adir}", None,
     "is a cnn critic and"),
    ("rescore-coordinator-no-host", "rescore --critics {ok_critic} --generate 2 --coordinator"
     " :1234 --out {world}/c.csv", None, "HOST:PORT"),
    ("rescore-coordinator-bad-port", "rescore --critics {ok_critic} --generate 2 --coordinator"
     " localhost:xx --out {world}/c.csv", None, "HOST:PORT with a port 1 to 65535"),
    ("rescore-critics-mixed-kinds", "rescore --critics {mixed_critics} --generate 2 --out"
     " {world}/mixed.csv", None, "an ensemble stacks critics of one kind"),
    ("gen-critic-nan", "generate --critic {nan_critic} --out {adir}", None,
     "not finite (NaN or inf)"),
    ("gen-critic-config-list", "generate --critic {list_config_critic} --out {adir}", None,
     "unknown critic configuration"),
    ("gen-critic-no-variables", "generate --critic {no_variables_critic} --out {adir}", None,
     "its 'variables' are missing"),
    ("gen-critic-n-mfcc", "generate --critic {mfcc40_critic} --out {adir}", None,
     "n_mfcc is 40 in the file but 60"),
    ("gen-critic-hidden", "generate --critic {hidden_critic} --out {adir}", None,
     "hidden is 128 in its configuration but 64"),
    ("gen-critic-sample-rate", "generate --critic {sr48k_critic} --out {adir}", None,
     "sr is 48000 in the file but 44100"),
    ("gen-critic-other-tempo", "generate --critic {ok_critic} --bpm 100 --out {adir}", None,
     "bar_samples is 88200 in the file but 105840"),
    ("gen-critic-folder-empty", "generate --critic {no_critics} --out {adir}", None,
     "holds no"),
    ("gen-ensemble-mixed", "generate --critic {ok_critic} --critic {mfcc40_critic}"
     " --out {adir}", None, "n_mfcc"),
    ("gen-vote-without-critic", "generate --vote --out {adir}", None, "--vote needs"),
    ("gen-min-score-and-climb", "generate --min-score 0.9 --climb 1 --out {adir}", None,
     "pick one"),
    ("gen-chains-beyond-memory", "generate --n 1 --chains 1000000000000 --out {adir}", None,
     "--chains 1000000000000 does not fit in memory: at most"),
    ("gen-n-beyond-memory", "generate --n 1000000 --chains 2000000 --out {adir}", None,
     "does not fit in memory: at most"),
    ("gen-n-beyond-disk", "generate --n 1000000000000 --out {adir}", None,
     "does not fit on disk: at most"),
    # render
    ("render-loop-missing", "render {world}/none.json --out {adir}/x.wav", None,
     "cannot read loop file"),
    ("render-loop-is-a-folder", "render {adir} --out {world}/x.wav", None,
     "cannot read loop file"),
    ("render-malformed", "render {malformed_json} --out {adir}/x.wav", None,
     "not valid JSON"),
    ("render-not-utf8", "render {binary_json} --out {adir}/x.wav", None, "not valid JSON"),
    ("render-not-an-object", "render {list_json} --out {adir}/x.wav", None, "JSON object"),
    ("render-nine-tracks", "render {nine_json} --out {adir}/x.wav", None,
     "1 to 8 tracks and 1 to 64 steps"),
    ("render-100000-steps", "render {long_json} --out {adir}/x.wav", None,
     "1 to 8 tracks and 1 to 64 steps"),
    ("render-ragged-grid", "render {ragged_json} --out {adir}/x.wav", None, "equal-length"),
    ("render-grid-values", "render {values_json} --out {adir}/x.wav", None, "0/1"),
    ("render-empty-grid", "render {empty_grid_json} --out {adir}/x.wav", None, "non-empty"),
    ("render-samples-count", "render {few_samples_json} --out {adir}/x.wav", None,
     "one sample path per grid row"),
    ("render-bpm-text", "render {bpm_text_json} --out {adir}/x.wav", None,
     "'bpm' must be a number"),
    ("render-bpm-high", "render {bpm_high_json} --out {adir}/x.wav", None, "60 to 200"),
    ("render-bpm-low", "render {bpm_low_json} --out {adir}/x.wav", None, "60 to 200"),
    ("render-foreign-sample", "render {foreign_json} --out {adir}/x.wav", None,
     "nope/missing.wav"),
    ("render-out-is-a-folder", "render {loop_json} --out {adir}", None,
     "is a folder; pass a file name"),
    ("render-out-under-a-file", "render {loop_json} --out {afile}/x.wav", None,
     "is a file, not a folder"),
    ("render-out-read-only", "render {loop_json} --out {ro}/x.wav", ("ro", errno.EROFS),
     "read-only file system"),
    ("render-no-out", "render {loop_json}", None, "--out"),
    ("render-kit-missing", "render {loop_json} --kit {world}/nokit --out {adir}/x.wav", None,
     "does not exist"),
    # export
    ("export-loop-missing", "export {world}/none.json", None, "cannot read loop file"),
    ("export-bad-grid", "export {values_json} --out {adir}/x", None, "0/1"),
    ("export-wav-is-a-folder", "export {loop_json} --wav --out {world}/adir", None,
     "is a folder"),
    ("export-out-under-a-file", "export {loop_json} --out {afile}/x", None,
     "is a file, not a folder"),
    ("export-out-forbidden", "export {loop_json} --midi --out {forbidden}/x",
     ("forbidden", errno.EACCES), "permission denied"),
    ("export-foreign-sample", "export {foreign_json} --midi --out {adir}/x", None,
     "nope/missing.wav"),
    # play
    ("play-session-is-a-file", "play --session {afile}", None, "is a file; pass a folder"),
    ("play-session-under-a-file", "play --session {afile}/s", None, "is a file, not a folder"),
    ("play-session-torn-meta", "play --session {bad_session}", None, "not a session file"),
    ("play-session-read-only", "play --session {ro}/s", ("ro", errno.EROFS),
     "read-only file system"),
    ("play-kit-missing", "play --kit {world}/nokit --session {world}/new_session", None,
     "does not exist"),
    ("play-seed-text", "play --seed x", None, "invalid seed value"),
    ("play-prior-damaged", "play --pretrained {bad_prior_json} --session {world}/p1", None,
     "damaged prior file"),
    ("play-prior-missing", "play --pretrained {world}/none.json --session {world}/p2", None,
     "cannot read the pretrained prior"),
    ("play-prior-not-json", "play --pretrained {malformed_json} --session {world}/p3", None,
     "not a ddjax prior file"),
    # experiment
    ("exp-no-source", "experiment --out {adir}", None, "required"),
    ("exp-both-sources", "experiment --rater all --from-sessions {results} --out {adir}",
     None, "not allowed with"),
    ("exp-out-is-a-file", "experiment --from-sessions {results} --out {afile}", None,
     "is a file; pass a folder"),
    ("exp-out-under-a-file", "experiment --from-sessions {results} --out {afile}/x", None,
     "is a file, not a folder"),
    ("exp-sessions-missing", "experiment --from-sessions {world}/none --out {adir}", None,
     "is not a folder"),
    ("exp-sessions-empty", "experiment --from-sessions {no_results} --out {adir}", None,
     "no result.json"),
    ("exp-sessions-bad-result", "experiment --from-sessions {bad_results} --out {adir}", None,
     "not a result file"),
    ("exp-ratings-zero", "experiment --rater all --ratings 0", None, "1 to 1,000,000, got 0"),
    ("exp-prior-damaged",
     "experiment --rater bright --pretrained {bad_prior_json} --out {world}/e1", None,
     "damaged prior file"),
    ("exp-rater-unknown", "experiment --rater {world}/none.py:rate --out {adir}", None,
     "none.py"),
    ("exp-disk-full", "experiment --from-sessions {results} --out {adir}",
     ("*write*", errno.ENOSPC), "summary.json: no space left on device"),
    ("exp-out-read-only", "experiment --from-sessions {results} --out {ro}/x",
     ("ro", errno.EROFS), "read-only file system"),
    # serve
    ("serve-port-too-high", "serve --port 99999", None, "65535"),
    ("serve-port-negative", "serve --port -1", None, "65535"),
    ("serve-port-text", "serve --port http", None, "invalid port"),
    ("serve-session-is-a-file", "serve --session {afile} --port 0", None,
     "is a file; pass a folder"),
    ("serve-session-torn-meta", "serve --session {bad_session} --port 0", None,
     "not a session file"),
    ("serve-session-read-only", "serve --session {ro}/s --port 0", ("ro", errno.EROFS),
     "read-only file system"),
    ("serve-remote-host", "serve --session {world}/srv --host 0.0.0.0 --port 0", None,
     "--allow-remote"),
    ("serve-study-ratings-zero", "serve --study --study-ratings 0", None, "1 to 1,000,000, got 0"),
    ("serve-prior-damaged",
     "serve --pretrained {bad_prior_json} --session {world}/srv3 --port 0", None,
     "damaged prior file"),
    ("serve-kit-missing", "serve --kit {world}/nokit --session {world}/srv2 --port 0", None,
     "does not exist"),
    # rescore
    ("rescore-out-is-a-folder", "rescore --critics {ok_critic} --generate 2 --out {adir}",
     None, "is a folder; pass a file name"),
    ("rescore-out-under-a-file",
     "rescore --critics {ok_critic} --generate 2 --out {afile}/x.csv", None,
     "is a file, not a folder"),
    ("rescore-out-read-only", "rescore --critics {ok_critic} --generate 2 --out {ro}/x.csv",
     ("ro", errno.EROFS), "read-only file system"),
    ("rescore-critic-missing",
     "rescore --critics {world}/none.critic --generate 2 --out {adir}/x.csv", None,
     "none.critic"),
    ("rescore-critic-garbage",
     "rescore --critics {garbage_critic} --generate 2 --out {adir}/x.csv", None,
     "not a ddjax critic"),
    ("rescore-critic-n-mfcc",
     "rescore --critics {mfcc40_critic} --generate 2 --out {adir}/x.csv", None,
     "n_mfcc is 40 in the file but 60"),
    ("rescore-critic-other-tempo",
     "rescore --critics {ok_critic} --bpm 90 --generate 2 --out {adir}/x.csv", None,
     "bar_samples"),
    ("rescore-bpm-high", "rescore --critics {ok_critic} --bpm 300 --generate 2"
     " --out {adir}/x.csv", None, "60 to 200"),
    ("rescore-batch-zero", "rescore --critics {ok_critic} --batch 0 --generate 2"
     " --out {adir}/x.csv", None, "positive"),
    ("rescore-batch-beyond-memory", "rescore --critics {ok_critic} --batch 1000000000"
     " --generate 2 --out {adir}/x.csv", None, "--batch 1000000000 does not fit in memory"),
    ("rescore-loops-missing", "rescore --critics {ok_critic} --loops {world}/none"
     " --out {adir}/x.csv", None, "does not exist"),
    ("rescore-no-inputs", "rescore --critics {ok_critic} --out {adir}/x.csv", None,
     "required"),
    ("rescore-nothing-to-resume", "rescore --critics {ok_critic} --generate 2"
     " --out {adir}/x.csv --resume", None, "nothing to resume"),
    ("rescore-hosts-half-given", "rescore --critics {ok_critic} --generate 2"
     " --out {adir}/x.csv --num-processes 2", None, "go together"),
    ("rescore-process-id-too-high", ("rescore --critics {ok_critic} --generate 2"
     " --out {adir}/x.csv --num-processes 2 --process-id 2"), None, "must be 0 to 1"),
    ("rescore-coordinator-timeout-zero", ("rescore --critics {ok_critic} --generate 2"
     " --out {adir}/x.csv --coordinator-timeout 0"), None, "must be 1 to 3600 s"),
    ("rescore-no-critics", "rescore --generate 2 --out {adir}/x.csv", None,
     "required: --critics"),
    ("rescore-merge-not-a-shard", "rescore --merge {afile} --out {adir}/m.csv", None,
     "cannot merge"),
    ("rescore-merge-missing", "rescore --merge {world}/none.csv --out {adir}/m.csv", None,
     "does not exist"),
    ("rescore-merge-with-critics", ("rescore --critics {ok_critic} --merge {afile}"
     " --out {adir}/m.csv"), None, "leave out --critics"),
    # the command itself
    ("no-command", "", None, "required"),
    ("unknown-command", "dance", None, "invalid choice"),
    # session.json damaged by hand (issue 27): one line naming the field
    ("export-session-bpm-text", "export --session {meta_bpm} --liked --out {world}/x.zip",
     None, "'bpm' is 'fast'; it must be a tempo, 60 to 200"),
    ("export-session-tracks-list", "export --session {meta_tracks} --liked"
     " --out {world}/x.zip", None, "'tracks' is [4]; it must be a whole number"),
    ("export-session-session-text", "export --session {meta_session} --liked"
     " --out {world}/x.zip", None, "'session' is 'oops'; it must be an object"),
    ("export-session-kit-number", "export --session {meta_kit} --liked --out {world}/x.zip",
     None, "'kit' is 5; it must be the kit folder"),
    ("play-session-bpm-text", "play --session {meta_bpm}", None, "'bpm' is 'fast'"),
    ("play-session-tracks-list", "play --session {meta_tracks}", None, "'tracks' is [4]"),
    ("play-session-session-text", "play --session {meta_session}", None,
     "'session' is 'oops'"),
    ("play-session-kit-number", "play --session {meta_kit}", None, "no kit recorded"),
    ("serve-session-bpm-text", "serve --session {meta_bpm} --port 0", None,
     "'bpm' is 'fast'"),
    ("serve-session-tracks-list", "serve --session {meta_tracks} --port 0", None,
     "'tracks' is [4]"),
    ("serve-session-session-text", "serve --session {meta_session} --port 0", None,
     "'session' is 'oops'"),
    ("serve-session-kit-number", "serve --session {meta_kit} --port 0", None,
     "no kit recorded"),
]


@pytest.fixture
def inject(monkeypatch, world):
    """Makes the filesystem fail at the system call, as a full disk, a read-only mount or
    a forbidden folder do (root ignores permissions, so they are simulated)."""
    def arm(fault):
        if fault is None:
            return
        where, code = fault
        if where == "*write*":
            def failing_write(fd, data):
                raise OSError(code, os.strerror(code))
            monkeypatch.setattr(os, "write", failing_write)
            return
        root = os.path.join(world["world"], where)
        for name in ("open", "mkdir"):
            real = getattr(os, name)

            def failing(path, *args, _real=real, **kwargs):
                if os.fspath(path).startswith(root + os.sep):
                    raise OSError(code, os.strerror(code), os.fspath(path))
                return _real(path, *args, **kwargs)
            monkeypatch.setattr(os, name, failing)
    return arm


def _tree(folder: str) -> dict[str, bytes]:
    return {str(p): (p.read_bytes() if p.is_file() else b"/")
            for p in pathlib.Path(folder).rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, world, inject, capsys):
    _, argv, fault, expected = case
    argv = [arg.format(**world) for arg in argv.split()]
    before = _tree(world["world"])
    capsys.readouterr()
    inject(fault)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert "Traceback" not in out + err
    assert expected in err, err
    assert _tree(world["world"]) == before  # nothing written, not even a temp file


def test_the_table_covers_every_command_sixty_times():
    commands = {c[1].split()[0] for c in CASES if c[1]}
    assert commands >= {"generate", "render", "export", "play", "experiment", "serve",
                        "rescore"}
    assert len(CASES) >= 60


@pytest.mark.parametrize("command", ["", "generate", "render", "export", "play",
                                     "experiment", "serve", "rescore"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"] if command else ["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: ddjax {command}".rstrip())


@pytest.mark.parametrize("argv", [
    ["serve", "--port", "99999"],
    ["generate", "--n", "0", "--out", "x"],
    ["render", "{loop_json}", "--out", "{adir}"],
], ids=["serve-port", "generate-n", "render-out-folder"])
def test_the_installed_command_also_gives_one_line(argv, world, tmp_path):
    argv = [arg.format(**world) for arg in argv]
    done = subprocess.run(["ddjax", *argv], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("ddjax")
