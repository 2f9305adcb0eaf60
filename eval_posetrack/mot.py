"""MOTA / MOTP / precision / recall per joint, as poseval computes them with motmetrics from PyPI.

Two engines give the same counts:

* ``"motmetrics"`` (the cross-check engine, ``--mot-engine motmetrics``): exactly poseval's loop, one real
  ``motmetrics.MOTAccumulator(auto_id=True)`` per joint per sequence, ``metrics.create().compute(...)`` for
  the counts and ``acc.events['D'].sum()`` (RAW rows included, the motmetrics >= 1.2 MOTP quirk) for the
  distance sum. Slow (~0.2-1 ms per update).
* ``"fast"`` (the default of ``evaluate`` and ``posetrack eval``, identical to the official tool on real
  sequences): the same event rules as ``MOTAccumulator.update`` of the installed motmetrics
  (1.4.0), replayed with plain dict/set state per joint: (1) keep last frame's pairing if its distance
  is finite, (2) ``motmetrics.lap.linear_sum_assignment`` on the rest (same solver, same masked matrix,
  so the same tie-breaking), SWITCH = object previously paired with another hypothesis, plus the
  ASCEND / TRANSFER / MIGRATE rows whose distances poseval's ``events['D'].sum()`` also adds. The
  assignment problem is skipped when the valid pairs already form a matching (then every solver
  returns exactly those pairs). ``tests/eval_posetrack`` checks both engines agree on random sequences.

Inputs per sequence are the padded arrays of the labeled frames (see ``evaluate.PreparedSequence``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .records import NUM_JOINTS

MID_NAMES = ("num_misses", "num_switches", "num_false_positives", "num_objects", "num_detections")


@dataclass
class MotCounts:
    """Per-joint event counts summed over sequences (each (15,) float64) and the distance sum."""

    misses: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    switches: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    false_positives: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    objects: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    detections: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    sum_d: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))

    def add(self, other: MotCounts) -> None:
        for name in ("misses", "switches", "false_positives", "objects", "detections", "sum_d"):
            getattr(self, name).__iadd__(getattr(other, name))


class _JointState:
    """The parts of MOTAccumulator's state that decide event types (max_switch_time = inf)."""

    __slots__ = ("m", "res_m", "last_match", "hyp_history", "miss", "sw", "fp", "match", "sum_d")

    def __init__(self) -> None:
        self.m: dict = {}  # object id -> hypothesis id it was last paired with
        self.res_m: dict = {}  # hypothesis id -> object id (set in step 2 only, as motmetrics does)
        self.last_match: set = set()  # objects matched at least once
        self.hyp_history: set = set()  # hypotheses matched at least once
        self.miss = self.sw = self.fp = self.match = 0
        self.sum_d = 0.0

    def _pair_step2(self, o, h, d: float) -> None:
        m = self.m
        is_switch = o in m and m[o] != h
        if is_switch:
            self.sw += 1
            if h not in self.hyp_history:
                self.sum_d += d  # ASCEND row
        else:
            self.match += 1
        if h in self.res_m and self.res_m[h] != o:
            if o not in self.last_match:
                self.sum_d += d  # MIGRATE row
            self.sum_d += d  # TRANSFER row
        self.sum_d += d  # MATCH / SWITCH row
        self.hyp_history.add(h)
        self.last_match.add(o)
        m[o] = h
        self.res_m[h] = o

    def update(self, oids: np.ndarray, hids: np.ndarray, dists: np.ndarray) -> None:
        """One ``MOTAccumulator.update(oids, hids, dists)``; dists (n_o, n_h) with NaN = no pairing."""
        no, nh = len(oids), len(hids)
        valid = np.isfinite(dists)
        vi, vj = np.nonzero(valid)
        if len(vi) == 0:
            self.miss += no
            self.fp += nh
            return
        vd = dists[vi, vj]
        self.sum_d += float(vd.sum())  # RAW rows carry every finite distance
        oid_list = oids.tolist()
        hid_list = hids.tolist()
        simple = (len(np.unique(vi)) == len(vi) and len(np.unique(vj)) == len(vj)
                  and len(set(oid_list)) == no and len(set(hid_list)) == nh)
        if simple:
            # The valid pairs form a matching: step 1 keeps those equal to the previous pairing, the
            # assignment of step 2 is exactly the remaining valid pairs; rows come in ascending order.
            m = self.m
            pairs = list(zip(vi.tolist(), vj.tolist(), vd.tolist()))
            carried = []
            for i, j, d in pairs:
                o, h = oid_list[i], hid_list[j]
                kept = o in m and m[o] == h
                carried.append(kept)
                if kept:
                    self.match += 1
                    self.sum_d += d
                    self.last_match.add(o)
                    self.hyp_history.add(h)
            for (i, j, d), kept in zip(pairs, carried):
                if not kept:
                    self._pair_step2(oid_list[i], hid_list[j], d)
            self.miss += no - len(vi)
            self.fp += nh - len(vj)
            return
        self._general(oid_list, hid_list, hids, dists.copy())

    def _general(self, oid_list: list, hid_list: list, hids: np.ndarray, d: np.ndarray) -> None:
        no, nh = len(oid_list), len(hid_list)
        omask = np.zeros(no, bool)
        hmask = np.zeros(nh, bool)
        m = self.m
        for i in range(no):
            o = oid_list[i]
            if o not in m:
                continue
            hprev = m[o]
            js = np.nonzero(~hmask & (hids == hprev))[0]
            if len(js) == 0:
                continue
            j = js[0]
            if np.isfinite(d[i, j]):
                omask[i] = True
                hmask[j] = True
                self.match += 1
                self.sum_d += float(d[i, j])
                self.last_match.add(o)
                self.hyp_history.add(hid_list[j])
        d[omask, :] = np.nan
        d[:, hmask] = np.nan
        finite = np.isfinite(d)
        if (finite.sum(axis=0) <= 1).all() and (finite.sum(axis=1) <= 1).all():
            # the valid pairs left already form a matching: every solver returns exactly them (as in the fast
            # path of update), so motmetrics.lap (pandas, scipy.optimize: ~0.6 s of imports) is not needed
            rids, cids = np.nonzero(finite)
        else:
            from motmetrics.lap import linear_sum_assignment

            rids, cids = linear_sum_assignment(d)
        for i, j in zip(rids.tolist(), cids.tolist()):
            if not np.isfinite(d[i, j]):
                continue
            self._pair_step2(oid_list[i], hid_list[j], float(d[i, j]))
            omask[i] = True
            hmask[j] = True
        self.miss += int(no - omask.sum())
        self.fp += int(nh - hmask.sum())


def _frame_pairs(gt_tid, gt_has, pr_tid, pr_has, dist, match, t: int, j: int):
    """oids (n_o,), hids (n_h,), thresholded distances (n_o, n_h) (NaN = beyond PCKh@0.5) of joint j."""
    gsel = np.nonzero(gt_has[t, :, j])[0]
    qsel = np.nonzero(pr_has[t, :, j])[0]
    sub = dist[t][np.ix_(qsel, gsel)][:, :, j].T
    ok = match[t][np.ix_(qsel, gsel)][:, :, j].T
    return gt_tid[t, gsel], pr_tid[t, qsel], np.where(ok, sub, np.nan)


def sequence_counts(gt_tid: np.ndarray, gt_has: np.ndarray, pr_tid: np.ndarray, pr_has: np.ndarray,
                    dist: np.ndarray, match: np.ndarray, n_gt: np.ndarray, n_pr: np.ndarray,
                    engine: str = "fast") -> MotCounts:
    """MOT counts of one sequence, per joint, as poseval's ``computeMetrics`` accumulates them.

    gt_tid (T, G) / pr_tid (T, Q) int64 track ids; gt_has (T, G, 15) / pr_has (T, Q, 15) bool;
    dist (T, Q, G, 15) float64 normalised distances; match (T, Q, G, 15) bool (dist <= 0.5);
    n_gt / n_pr (T,) persons per frame (padding excluded). T = labeled frames of the sequence; the last
    one is skipped (poseval's ``imgidxs[:-1]``). Frames with no GT or no predicted person get the dummy
    update ``([0], [0], NaN)`` for every joint.
    """
    T = len(n_gt)
    frames = range(max(T - 1, 0))
    out = MotCounts()
    if engine == "motmetrics":
        import motmetrics as mm

        accs = [mm.MOTAccumulator(auto_id=True) for _ in range(NUM_JOINTS)]
        for t in frames:
            if n_gt[t] == 0 or n_pr[t] == 0:
                for acc in accs:
                    acc.update([0], [0], np.full((1, 1), np.nan))
                continue
            for j in range(NUM_JOINTS):
                oids, hids, d = _frame_pairs(gt_tid, gt_has, pr_tid, pr_has, dist, match, t, j)
                accs[j].update(oids.tolist(), hids.tolist(), d)
        mh = mm.metrics.create()
        for j, acc in enumerate(accs):
            r = mh.compute(acc, metrics=list(MID_NAMES), return_dataframe=False, name="acc")
            out.misses[j] = r["num_misses"]
            out.switches[j] = r["num_switches"]
            out.false_positives[j] = r["num_false_positives"]
            out.objects[j] = r["num_objects"]
            out.detections[j] = r["num_detections"]
            s = acc.events["D"].sum()
            out.sum_d[j] = 0.0 if np.isnan(s) else s
        return out
    if engine != "fast":
        raise ValueError(f"unknown MOT engine {engine!r} (use 'fast' or 'motmetrics')")
    if T <= 1:
        return out
    return _fast_counts(gt_tid, gt_has, pr_tid, pr_has, dist, match, n_gt, n_pr)


def _fast_counts(gt_tid, gt_has, pr_tid, pr_has, dist, match, n_gt, n_pr) -> MotCounts:
    out = MotCounts()
    T = len(n_gt)
    F = T - 1
    real = (n_gt[:F] > 0) & (n_pr[:F] > 0)
    n_dummy = int((~real).sum())
    n_obj = gt_has[:F].sum(axis=1) * real[:, None]  # (F, 15)
    n_hyp = pr_has[:F].sum(axis=1) * real[:, None]
    # every valid (thresholded) pair of every frame and joint, sorted by joint, frame, object, hypothesis
    t, q, g, j = np.nonzero(match[:F] & real[:, None, None, None])
    order = np.lexsort((q, g, t, j))
    t, q, g, j = t[order], q[order], g[order], j[order]
    d = dist[t, q, g, j]
    n = len(t)
    key = j.astype(np.int64) * F + t  # group = (joint, frame)
    starts = np.r_[0, np.nonzero(np.diff(key))[0] + 1] if n else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], n] if n else np.zeros(0, np.int64)
    # a group is "simple" when its pairs form a matching (no object or hypothesis twice) and the frame's
    # GT ids are unique; otherwise it goes through the full update with the assignment solver
    dup_g = np.zeros(n, bool)
    dup_q = np.zeros(n, bool)
    if n:
        dup_g[1:] = (key[1:] == key[:-1]) & (g[1:] == g[:-1])
        o2 = np.lexsort((q, key))
        dq = np.zeros(n, bool)
        dq[1:] = (key[o2][1:] == key[o2][:-1]) & (q[o2][1:] == q[o2][:-1])
        dup_q[o2] = dq
    bad_pair = dup_g | dup_q
    gt_dup_frame = np.array([len(set(r[:c].tolist())) != c for r, c in zip(gt_tid[:F], n_gt[:F])], bool)
    complex_group = np.logical_or.reduceat(bad_pair, starts) if n else np.zeros(0, bool)
    gs = key[starts] if n else np.zeros(0, np.int64)
    complex_group |= gt_dup_frame[gs % F] if n else complex_group
    # misses / false positives / raw distance sums that need no state
    npairs = ends - starts
    simple_pairs = np.zeros((F, NUM_JOINTS))
    if n:
        np.add.at(simple_pairs, (gs[~complex_group] % F, gs[~complex_group] // F), npairs[~complex_group])
    is_complex = np.zeros((F, NUM_JOINTS), bool)
    if n:
        is_complex[gs[complex_group] % F, gs[complex_group] // F] = True
    simple_cell = ~is_complex
    out.misses += ((n_obj - simple_pairs) * simple_cell).sum(axis=0) + n_dummy
    out.false_positives += ((n_hyp - simple_pairs) * simple_cell).sum(axis=0) + n_dummy
    raw = np.zeros(NUM_JOINTS)
    if n:
        pair_simple = np.repeat(~complex_group, npairs)
        np.add.at(raw, j[pair_simple], d[pair_simple])
    out.sum_d += raw  # RAW rows of the simple groups (complex groups add theirs in update())
    oid = gt_tid[t, g].tolist()
    hid = pr_tid[t, q].tolist()
    dl = d.tolist()
    states = [_JointState() for _ in range(NUM_JOINTS)]
    for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        jj = int(j[a])
        st = states[jj]
        if complex_group[k]:
            tt = int(t[a])
            oids, hids, dm = _frame_pairs(gt_tid, gt_has, pr_tid, pr_has, dist, match, tt, jj)
            st.update(oids, hids, dm)
            continue
        m = st.m
        carried = [False] * (b - a)
        for x in range(a, b):
            o, h = oid[x], hid[x]
            if m.get(o, _NONE) == h:
                carried[x - a] = True
                st.match += 1
                st.sum_d += dl[x]
                st.last_match.add(o)
                st.hyp_history.add(h)
        for x in range(a, b):
            if not carried[x - a]:
                st._pair_step2(oid[x], hid[x], dl[x])
    for jj, st in enumerate(states):
        out.misses[jj] += st.miss
        out.false_positives[jj] += st.fp
        out.switches[jj] += st.sw
        out.sum_d[jj] += st.sum_d
    # motmetrics: detections = MATCH + SWITCH rows; objects = MATCH + SWITCH + MISS rows
    det = np.array([st.match + st.sw for st in states], dtype=np.float64)
    out.detections += det
    out.objects += out.misses + det
    return out


_NONE = object()


def final_metrics(c: MotCounts) -> dict[str, np.ndarray]:
    """poseval's per-joint MOTA, MOTP, Prec, Rec (in %, (15,) each) from summed counts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        num_obj = np.where(c.objects > 0, c.objects, np.nan)
        mota = 100 * (1.0 - (c.misses + c.switches + c.false_positives) / num_obj)
        motp = np.where((c.detections == 0) | np.isnan(c.sum_d), 0.0,
                        100 * (1.0 - c.sum_d / np.where(c.detections == 0, 1, c.detections)))
        total_det = np.where(c.false_positives + c.detections > 0, c.false_positives + c.detections, np.nan)
        pre = 100 * (1.0 * c.detections / total_det)
        rec = 100 * (1.0 * c.detections / num_obj)
    return {"mota": mota, "motp": motp, "pre": pre, "rec": rec}
