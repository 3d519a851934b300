"""Event streams binned into frames: what ``refsnn data from-events`` stores as sequences.

An event stream is one sample: a structured array with integer fields ``t`` (time, ascending),
``x``, ``p`` (polarity) and optionally ``y``, as the ``tonic`` package holds them. It becomes
frames (T, P, H, W) (with ``y``) or (T, P, W) (without), each the count of events per pixel and
polarity in one time bin, as ``tonic.transforms.ToFrame`` does (``docs/data.md``, "Event
streams", is the written rule; ``tests/test_sequences.py`` checks the two agree on random
streams). tonic itself is not imported.

The bins (``t0`` is the stream's first time, ``t1`` its last):

* ``time_window=w`` (``overlap=o`` in time units, ``0 <= o < w``): the stride is ``s = w - o``;
  ``n = max(1, floor((t1 - t0 - w) / s) + 1)`` bins; bin ``k`` is ``[t0 + k s, t0 + k s + w)``.
  Events after the last complete window are dropped (tonic's ``include_incomplete=False``).
* ``n_time_bins=n`` (``overlap=f``, a fraction of a bin, ``0 <= f < 1``): the window is
  ``w = ((t1 - t0) // n) (1 + f)`` (floor division first), the stride ``s = w (1 - f)``; bin
  ``k`` is ``[t0 + k s, t0 + k s + w)``.

Every bin is half-open: an event exactly on an edge belongs to the bin that starts there, not
to the one that ends there (so the stream's last event falls outside the last bin when that
bin ends at ``t1``, as in tonic). The edges are computed with NumPy in the same order of
operations as tonic's slicers, so the same events fall into the same bins.
"""

from __future__ import annotations

import numpy as np

from refsnn.errors import DataFormatError


def bin_edges(t: np.ndarray, time_window=None, n_time_bins=None, overlap=0.0):
    """Start and end time of each bin of the stream whose (ascending) times are ``t``.

    Parameters
    ----------
    t : int ndarray, shape (E,), E >= 1
    time_window : number, optional
    n_time_bins : int, optional
        Exactly one of ``time_window`` and ``n_time_bins``.
    overlap : number
        Time units (``time_window``) or a fraction of a bin (``n_time_bins``).

    Returns
    -------
    starts, ends : ndarray, shape (n_bins,)
        Bin ``k`` holds the events with ``starts[k] <= t < ends[k]``.
    """
    check_binning(time_window, n_time_bins, overlap)
    if time_window is not None:
        stride = time_window - overlap
        duration = t[-1] - t[0]
        n = max(int(np.floor((duration - time_window) / stride) + 1), 1)
        starts = np.arange(n) * stride + t[0]
        return starts, starts + time_window
    window = (t[-1] - t[0]) // n_time_bins * (1 + overlap)
    stride = window * (1 - overlap)
    starts = np.arange(n_time_bins) * stride + t[0]
    return starts, starts + window


def check_binning(time_window, n_time_bins, overlap) -> None:
    """Refuse a binning that is not exactly one of ``time_window`` > 0 and ``n_time_bins``
    >= 1, or an overlap outside ``[0, time_window)`` or ``[0, 1)``."""
    if (time_window is None) == (n_time_bins is None):
        raise DataFormatError("binning: expected exactly one of time_window and n_time_bins")
    if time_window is not None and not (np.isfinite(time_window) and time_window > 0):
        raise DataFormatError(f"time_window: expected a number > 0, found {time_window!r}")
    if n_time_bins is not None and (not isinstance(n_time_bins, (int, np.integer))
                                    or n_time_bins < 1):
        raise DataFormatError(f"n_time_bins: expected an integer >= 1, found {n_time_bins!r}")
    top = 1 if time_window is None else time_window
    if not (np.isfinite(overlap) and 0 <= overlap < top):
        raise DataFormatError(f"overlap: expected a number in [0, {top:g}) (a "
                              f"{'fraction of a bin' if time_window is None else 'time'}), "
                              f"found {overlap!r}")


def to_frames(events: np.ndarray, sensor_size, time_window=None, n_time_bins=None,
              overlap=0.0, what: str = "events") -> np.ndarray:
    """Event counts per bin, pixel and polarity of one stream.

    Parameters
    ----------
    events : structured ndarray, shape (E,)
        Fields ``t``, ``x``, ``p`` and optionally ``y``, integers (``p`` may be bool); ``t``
        ascending; at least one event.
    sensor_size : (W, H, P)
        Width, height (1 without ``y``) and polarities; with ``P == 1`` every event counts
        as polarity 0 (all must have the same ``p``).
    time_window, n_time_bins, overlap
        The bins (:func:`bin_edges`).
    what : str
        The stream's name in error messages.

    Returns
    -------
    int64 ndarray, shape (T, P, H, W) with a ``y`` field, (T, P, W) without
    """
    names = events.dtype.names or ()
    missing = [f for f in ("t", "x", "p") if f not in names]
    if missing or events.ndim != 1:
        raise DataFormatError(f"{what}: expected a 1-D structured array with fields t, x, p "
                              f"(and y), found {events.dtype} {events.shape}")
    if events.shape[0] == 0:
        raise DataFormatError(f"{what}: expected at least one event, found none")
    width, height, polarities = (int(s) for s in sensor_size)
    has_y = "y" in names
    fields = {"x": width, "p": polarities, **({"y": height} if has_y else {})}
    for name in ("t", *fields):
        if events[name].dtype.kind not in "iub":
            raise DataFormatError(f"{what}: field {name}: expected integers, found "
                                  f"{events[name].dtype}")
    t = events["t"]
    if np.any(np.diff(t) < 0):
        i = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        raise DataFormatError(f"{what}: field t: expected ascending times, found {t[i]} after "
                              f"{t[i - 1]} at event {i}")
    p = events["p"].astype(np.int64)
    if polarities == 1:
        if np.unique(p).size > 1:
            raise DataFormatError(f"{what}: sensor size has 1 polarity, but the events have "
                                  f"{np.unique(p).size}")
        p = np.zeros_like(p)
    index = {"p": p, "x": events["x"].astype(np.int64)}
    if has_y:
        index["y"] = events["y"].astype(np.int64)
    for name, size in fields.items():
        bad = np.flatnonzero((index[name] < 0) | (index[name] >= size))
        if bad.size:
            raise DataFormatError(f"{what}: field {name}: expected values in [0, {size}) "
                                  f"(the sensor size), found {index[name][bad[0]]} at event "
                                  f"{int(bad[0])}")
    starts, ends = bin_edges(t, time_window, n_time_bins, overlap)
    lo, hi = np.searchsorted(t, starts), np.searchsorted(t, ends)
    shape = (polarities, height, width) if has_y else (polarities, width)
    frames = np.zeros((len(starts),) + shape, np.int64)
    where = (index["p"], index["y"], index["x"]) if has_y else (index["p"], index["x"])
    for k, (a, b) in enumerate(zip(lo, hi)):
        np.add.at(frames[k], tuple(w[a:b] for w in where), 1)
    return frames


def streams_to_sequences(streams, sensor_size, time_window=None, n_time_bins=None,
                         overlap=0.0, what: str = "events"):
    """The frames of every stream, padded with empty frames at the end to the longest.

    Parameters
    ----------
    streams : sequence of structured ndarray
    sensor_size, time_window, n_time_bins, overlap
        As :func:`to_frames`.

    Returns
    -------
    frames : int64 ndarray, shape (N, T, *frame_shape)
        ``T`` the most bins of any stream (the same for all with ``n_time_bins``).
    lengths : int64 ndarray, shape (N,)
        Each stream's own number of bins before padding.
    """
    if len(streams) == 0:
        raise DataFormatError(f"{what}: expected at least one event stream, found none")
    framed = [to_frames(s, sensor_size, time_window, n_time_bins, overlap,
                        f"{what}: stream {i}") for i, s in enumerate(streams)]
    lengths = np.array([f.shape[0] for f in framed], np.int64)
    out = np.zeros((len(framed), int(lengths.max())) + framed[0].shape[1:], np.int64)
    for i, f in enumerate(framed):
        out[i, :f.shape[0]] = f
    return out, lengths
