"""The ``ddjax`` command line's grammar: every command, flag and help text.

``ddjax.cli.main`` runs what this parses.
"""

from __future__ import annotations

import argparse
import pathlib

from ddjax import __version__, limits
from ddjax.cli import rescore as rescore_cli
from ddjax.cli.argtypes import (
    bpm,
    count,
    distance,
    humanize,
    loudness,
    port,
    positive_count,
    positive_float,
    positive_int,
    probability,
    seed,
    style,
    swing,
    tracks,
)
from ddjax.core.groove import MAX_MS, MAX_VELOCITY
from ddjax.core.loop_space import DEFAULT_DISTANCE, LOOP_PRIORS
from ddjax.errors import DdjaxError
from ddjax.io.encode import DEFAULT_FORMAT, FORMATS
from ddjax.io.kit import bundled_kit
from ddjax.io.loudness import DEFAULT_LUFS

BUNDLED_KIT = bundled_kit()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _kit_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kit", type=pathlib.Path, default=BUNDLED_KIT,
                        help="folder of one-shot samples (default: the bundled samples/)")


def _private_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--private", action="store_true",
                        help=f"make the {what} readable by you only (folders 0700, files"
                             " 0600); without it, files follow the umask (0644 under 022)")


def _pretrained_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrained", metavar="FILE|none",
                        help="the critic's prior: the packaged pretrained prior (default),"
                             " 'none' for the paper's CNN from scratch, or a prior file made"
                             " by scripts/make_prior.py; a resumed session keeps its own")


def _audio_args(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--format", choices=FORMATS, default=DEFAULT_FORMAT,
                        help="audio file format: pcm24 (default, 24-bit WAV), pcm16, float32"
                             " (32-bit float WAV) or flac (24-bit); every render peaks at or"
                             " below -1 dBFS")
    parser.add_argument("--loop-wav", action="store_true",
                        help=f"{what} exactly one bar with the tails that ring past it folded"
                             " onto its start, so it loops in a DAW with no click or gap; the"
                             " WAV carries the tempo (acid chunk) and its name says it")
    _loudness_arg(parser)


def _stems_arg(parser: argparse.ArgumentParser, whose: str) -> None:
    parser.add_argument("--stems", action="store_true",
                        help=f"also write {whose} tracks alone, STEM_track<N>_<sample>.wav, at"
                             " the preview's settings and gain: they sum to the preview")


def _loudness_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loudness", type=loudness, default=DEFAULT_LUFS, metavar="LUFS|off",
                        help=f"integrated loudness (ITU-R BS.1770) of the audio played and"
                             f" written, {limits.MIN_LUFS:g} to {limits.MAX_LUFS:g} LUFS, one"
                             f" gain per loop, true peak kept at or below -1 dBTP (default"
                             f" {DEFAULT_LUFS:g}, EBU R128); 'off' for the raw mix. The critic"
                             " hears the raw mix either way")


def _size_args(parser: argparse.ArgumentParser, resumed: bool = False) -> None:
    keeps = "; a resumed session keeps its own" if resumed else ""
    parser.add_argument("--bpm", type=bpm,
                        help=f"tempo, {limits.MIN_BPM:g} to {limits.MAX_BPM:g} (default 120"
                             f"{keeps})")
    parser.add_argument("--tracks", type=tracks,
                        help=f"tracks a loop has, 1 to {limits.MAX_TRACKS} (default 4{keeps})")
    parser.add_argument("--swing", type=swing, metavar="PERCENT",
                        help=f"{limits.MIN_SWING:g} to {limits.MAX_SWING:g}, as on an MPC or"
                             " in Ableton: each off-beat 16th lands at PERCENT of its 8th note"
                             f" (50 straight, 66.67 triplet; default 50{keeps})")
    _humanize_arg(parser, f"none{keeps}")


def _humanize_arg(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--humanize", type=humanize, metavar="MS[,VELOCITY[,SEED]]",
                        help=f"seeded jitter, the same in the audio the critic hears and in"
                             f" the MIDI: each cell moves up to MS ms (at most {MAX_MS:g}) and"
                             f" its velocity up to VELOCITY (at most {MAX_VELOCITY}), e.g. 8,10"
                             f" (default {default})")


# The loop prior when --loop-prior is not given: generate's loops are music from the
# first one; a session's chains keep the musical prior, under which its critic learns a
# taste far better (bench/README.md, "Loops that are music": +0.47 against +0.22 on the
# zoo's held-out half), unless --style asks for the learned prior's styles.
DEFAULT_LOOP_PRIOR = {"generate": "learned", "play": "musical", "serve": "musical",
                      "experiment": "musical"}


def _loop_prior_arg(parser: argparse.ArgumentParser, command: str,
                    resumed: bool = True) -> None:
    default = DEFAULT_LOOP_PRIOR[command]
    parser.add_argument("--loop-prior", choices=LOOP_PRIORS, default=None,
                        help="what a loop looks like before any rating: 'learned' (learned"
                             " from real drum patterns, by style; something low on the beat, a"
                             " backbeat and a timekeeper as soft preferences, no silent"
                             " track), 'musical' (density, a kick, a backbeat) or 'uniform'"
                             f" (the paper's generator); default {default}"
                             + ("" if default == "learned" else ", or learned with --style")
                             + ("; a resumed session keeps its own" if resumed else ""))
    parser.add_argument("--style", type=style, default=None, metavar="NAME",
                        help="the learned prior's style (house, techno, boom-bap, rock, funk,"
                             " trap, ...: a wrong name lists them all; it implies"
                             " --loop-prior learned); default 'mix', every style. The critic"
                             " still decides within it")
    parser.add_argument("--distance", type=distance, default=DEFAULT_DISTANCE, metavar="N",
                        help="variations ('more like this', --from) change 2 to N cells of"
                             " their loop and keep all but one of its samples (one more per"
                             f" further 8 cells; default {DEFAULT_DISTANCE})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ddjax", description=(
        "DeepDrummer in JAX: sample drum loops with a critic and Metropolis-Hastings."))
    parser.add_argument("--version", action="version", version=f"ddjax {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="sample loops and write them as WAV + JSON",
                              description=(
        "Runs C Metropolis-Hastings chains for M iterations per round, on device, and "
        "writes each chain's final loop (listening WAV + JSON) until N loops are written."))
    _kit_arg(gen)
    gen.add_argument("--critic", type=pathlib.Path, action="append", metavar="FILE_OR_DIR",
                     help="critic file (default: a freshly initialised critic, as the paper's"
                          " untrained model); repeat it or name a folder of *.critic files to"
                          " sample against the ensemble's mean P(like)")
    gen.add_argument("--vote", action="store_true",
                     help="target the ensemble's vote (share of critics with f > 0.5)"
                          " instead of its mean")
    gen.add_argument("--n", type=positive_int, default=4, help="loops to write (default 4)")
    gen.add_argument("--chains", type=positive_int, default=16,
                     help="parallel chains per round (default 16)")
    gen.add_argument("--iters", type=count, default=100,
                     help="iterations per chain, the maximum with --min-score (default 100)")
    gen.add_argument("--temperature", type=positive_float, default=1.0,
                     help="MH temperature s: accept with min(1, (f'/f)^(1/s)) (default 1)")
    gen.add_argument("--min-score", type=probability,
                     help="run each chain until the critic's score reaches this, and keep only"
                          " loops that reach it (the paper's phase II uses 0.95)")
    gen.add_argument("--climb", type=probability, metavar="TARGET",
                     help="greedy hill-climbing toward TARGET instead of MH: 1 for the best"
                          " loops, 0 for the worst")
    gen.add_argument("--four-on-floor", action="store_true",
                     help="track 0 is a kick (detected from the audio) on steps 0, 4, 8, 12")
    _loop_prior_arg(gen, "generate", resumed=False)
    gen.add_argument("--bpm", type=bpm,
                     help=f"tempo, {limits.MIN_BPM:g} to {limits.MAX_BPM:g} (default 120, or"
                          " the --from loop's)")
    gen.add_argument("--tracks", type=tracks,
                     help=f"tracks a loop has, 1 to {limits.MAX_TRACKS} (default 4, or the"
                          " --from loop's)")
    gen.add_argument("--swing", type=swing, metavar="PERCENT",
                     help=f"{limits.MIN_SWING:g} to {limits.MAX_SWING:g}, as on an MPC or in"
                          " Ableton: every off-beat 16th lands at PERCENT of its 8th note, in"
                          " the audio and the MIDI (50 straight, 66.67 a triplet shuffle;"
                          " default 50, or the --from loop's)")
    _humanize_arg(gen, "none, or the --from loop's")
    gen.add_argument("--from", dest="start_from", type=pathlib.Path, metavar="LOOP.json",
                     help="more like this: every chain starts from this loop (its samples"
                          " must be in --kit) instead of from the prior")
    gen.add_argument("--seed", type=seed, default=0, help="PRNG seed (default 0)")
    _audio_args(gen, "also write each loop's LOOP_1bar_<bpm>bpm file:")
    gen.add_argument("--midi", action="store_true",
                     help="also write each loop's loop_NNNN.mid (one named track and one"
                          " distinct note per loop track, channel 10)")
    _stems_arg(gen, "each loop's")
    gen.add_argument("--out", type=pathlib.Path, required=True, help="output folder")

    rescore_cli.add_parser(commands)

    ren = commands.add_parser("render", help="re-render a saved loop exactly",
                              description="Renders a loop's JSON file to its listening"
                                          " preview (4 bars and a tail) or, with --loop-wav,"
                                          " to one seamless bar.")
    ren.add_argument("loop", type=pathlib.Path, metavar="LOOP.json")
    _kit_arg(ren)
    _audio_args(ren, "render")
    ren.add_argument("--out", type=pathlib.Path, required=True, metavar="FILE.wav")

    ply = commands.add_parser("play", help="rate loops in the terminal; the critic learns",
                              description=(
        "Plays loops and reads one key each: l like, d dislike, u undo, s skip, r replay,"
        " e export, q quit. Every rating is saved before the next loop; --session on an"
        " existing folder resumes it."))
    _kit_arg(ply)
    ply.add_argument("--session", type=pathlib.Path,
                     help="session folder (default: a new ddjax-session-<time> folder here)")
    ply.add_argument("--seed", type=seed, default=0, help="PRNG seed of a new session")
    _pretrained_arg(ply)
    _loop_prior_arg(ply, "play")
    _size_args(ply, resumed=True)
    _loudness_arg(ply)
    _private_arg(ply, "session folder")

    exp = commands.add_parser("export", help="export a saved loop as MIDI and/or WAV, or a"
                                             " session's liked loops as one zip",
                              description=(
        "Writes a loop's Standard MIDI File (channel 10, one bar of 16ths, one track per loop"
        " track named after its sample, each on its own note: the General MIDI note of its"
        " sample's kind, else a free tom or pad note) and/or its listening WAV. Without --midi or"
        " --wav, writes both. Several LOOP.json files go in one call (far quicker than a call"
        " each), into the folder --out or each beside its JSON file. With --session DIR"
        " --liked --out FILE.zip instead, writes"
        " every liked loop of a session as MIDI, a one-bar loop WAV and JSON, the one-shots"
        " they use, and a README of the tempo and of which note plays which one-shot."))
    exp.add_argument("loops", type=pathlib.Path, metavar="LOOP.json", nargs="*",
                     help="one or more saved loops; with several, --out is a folder and"
                          " each loop's files are named after its JSON file")
    exp.add_argument("--kit", type=pathlib.Path, default=None,
                     help="folder of one-shot samples (default: the bundled samples/, or the"
                          " session's recorded kit)")
    exp.add_argument("--session", type=pathlib.Path, metavar="DIR",
                     help="a session folder (ddjax play / serve), with --liked")
    exp.add_argument("--liked", action="store_true",
                     help="with --session: every liked loop, into the zip --out")
    exp.add_argument("--midi", action="store_true", help="write LOOP.mid")
    exp.add_argument("--wav", action="store_true", help="write LOOP.wav (the preview)")
    _stems_arg(exp, "the loop's")
    _audio_args(exp, "also write LOOP_1bar_<bpm>bpm.wav:")
    exp.add_argument("--out", type=pathlib.Path, metavar="STEM",
                     help="output path without suffix (default: beside LOOP.json); with"
                          " several loops, a folder; with --liked, the zip file")

    run = commands.add_parser("experiment", help="the paper's two-phase protocol with a rater",
                              description=(
        "Phase I: --ratings loops drawn by MH from the latest critic, rated and trained on."
        " Phase II: --eval loops from the initial and from the final critic (each chain"
        " until f >= 0.95), shuffled and rated blind. Writes result.json, both critics and"
        " a like-rate plot to --out."))
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--rater", metavar="FILE_OR_MODULE:FUNCTION",
                        help="a callable taking a Loop and returning True/False/None, a"
                             " built-in simulated user's name, or 'all' for every built-in"
                             " user")
    source.add_argument("--from-sessions", type=pathlib.Path, nargs="+", metavar="DIR",
                        help="aggregate finished runs instead: every result.json under DIR"
                             " (experiment outputs, or the study folder of ddjax serve"
                             " --study); writes summary.json and densities.png to --out")
    run.add_argument("--ratings", type=positive_count, default=80, help="phase I ratings")
    run.add_argument("--eval", type=positive_count, default=30, help="phase II loops per critic")
    run.add_argument("--seed", type=seed, default=0, help="first seed")
    run.add_argument("--seeds", type=positive_count, default=1, help="runs per rater")
    run.add_argument("--steps-per-rating", type=count,
                     help="with --pretrained none: training steps after each rating"
                          " (default: TrainConfig's)")
    _pretrained_arg(run)
    _loop_prior_arg(run, "experiment", resumed=False)
    _size_args(run)
    _kit_arg(run)
    run.add_argument("--out", type=pathlib.Path, default=pathlib.Path("experiment"),
                     help="output folder (default: experiment/)")
    _private_arg(run, "output folder")

    srv = commands.add_parser("serve", help="rate loops in the browser (or run a study)",
                              description=(
        "Starts a local web server with the rating page: the loop plays in a loop, Like /"
        " Dislike (keys L / D or the arrow keys, space plays and pauses), the loop's grid,"
        " the critic's score, the like rate, and the liked loops to download. With"
        " --study, runs the paper's two-phase protocol for any number of participants."
        " Every rating is on disk before the next loop; restarting resumes every session."))
    srv.add_argument("--kit", type=pathlib.Path, default=None,
                     help="folder of one-shot samples (default: the session's recorded kit,"
                          " else the bundled samples/)")
    srv.add_argument("--session", type=pathlib.Path, default=pathlib.Path("ddjax-session"),
                     help="session folder, or the study folder with --study; an existing one"
                          " is resumed (default: ddjax-session/)")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1, this machine only)")
    srv.add_argument("--port", type=port, default=8000,
                     help="port, 1 to 65535 (default 8000; 0 picks a free one)")
    srv.add_argument("--allow-remote", action="store_true",
                     help="allow a --host other machines can reach (there is no login)")
    srv.add_argument("--study", action="store_true",
                     help="run the paper's study: instructions, phase I, phase II, results")
    srv.add_argument("--study-ratings", type=positive_count, default=80,
                     help="phase I ratings per participant (default 80)")
    srv.add_argument("--study-eval", type=positive_count, default=30,
                     help="phase II loops per critic (default 30)")
    srv.add_argument("--resume-by-id", action="store_true",
                     help="with --study: typing an existing participant id resumes that"
                          " participant (and shows their results); without it, such an id"
                          " is refused")
    srv.add_argument("--max-participants", type=positive_count, default=None,
                     help="with --study: participants rating at once; a newcomer past it"
                          " waits on a page with their place in line (default: the"
                          " capacity measured on this machine, bench/study_load.py)")
    srv.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                     help="with --study: open the page at once, without first compiling"
                          " what many participants at once will run (a quick trial; the"
                          " first participants then wait for those compilations)")
    srv.add_argument("--consent", type=pathlib.Path, default=None,
                     help="with --study: a consent page (Markdown or HTML) each participant"
                          " agrees to first; the agreement is logged")
    srv.add_argument("--archive-audio", choices=("flac", "none"), default="flac",
                     help="with --study: a participant's archive keeps its audio as FLAC"
                          " (default) or leaves it out (it can be rendered again from the"
                          " JSON)")
    srv.add_argument("--seed", type=seed, default=0,
                     help="PRNG seed of a new session (a participant's adds a hash of its id)")
    _pretrained_arg(srv)
    _loop_prior_arg(srv, "serve")
    _size_args(srv, resumed=True)
    _loudness_arg(srv)
    _private_arg(srv, "session folder")
    return parser


def resolve_loop_prior(args: argparse.Namespace) -> None:
    """Sets ``args.loop_prior`` where it was not given (``DEFAULT_LOOP_PRIOR``; learned with
    --style). A DdjaxError where --style meets another prior."""
    if not hasattr(args, "loop_prior"):
        return
    if args.loop_prior is None:
        args.loop_prior = ("learned" if args.style is not None
                           else DEFAULT_LOOP_PRIOR[args.command])
    elif args.style is not None and args.loop_prior != "learned":
        raise DdjaxError(f"--style picks a style of the learned loop prior, not of"
                         f" '{args.loop_prior}'; pass --loop-prior learned or drop --style")
