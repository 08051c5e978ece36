"""I/O: everything that crosses the disk, on the host.

Kits (audio files -> one padded array, and what each sample is: its kind and MIDI note,
decided once at loading), loop files (JSON, WAV, atomic writes), audio encoding, MIDI and
the other exports, and critic files.

May import: ``ddjax.core``, ``ddjax.errors``, ``ddjax.limits``.
"""
