# How a self-test judges the model's outputs against selftest.npz's expected arrays.
#
# Copied verbatim into every generated loader.py (the `compare` block of
# edgebuild/bundle/templates/_common.py.j2, which a runtime's template may replace). Python 3.7,
# numpy.


def compare_outputs(outputs, expected, atol, rtol, min_cosine):
    """Every expected array must match its output within atol + rtol * |expected| elementwise
    and, when min_cosine is given, also have at least that cosine similarity."""
    import numpy as np

    problems, report = [], []
    for name in sorted(expected):
        if name not in outputs:
            problems.append(
                "FAIL %s: the model produced no output of that name (got %s)"
                % (name, ", ".join(sorted(outputs)) or "none")
            )
            continue
        want = np.asarray(expected[name], dtype=np.float64)
        got = np.asarray(outputs[name], dtype=np.float64)
        if got.shape != want.shape:
            if got.size != want.size:
                problems.append("FAIL %s: shape %s, expected %s" % (name, got.shape, want.shape))
                continue
            got = got.reshape(want.shape)  # e.g. a runtime that drops a batch axis of 1
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        norms = float(np.linalg.norm(got) * np.linalg.norm(want))
        cosine = (
            float(np.dot(got.ravel(), want.ravel()) / norms)
            if norms > 0
            else float(np.array_equal(got, want))
        )
        close = bool(np.allclose(got, want, atol=atol, rtol=rtol))
        line = "%s: max |diff| %.3g (atol %.3g, rtol %.3g), cosine %.6f" % (name, diff, atol, rtol, cosine)
        if min_cosine is not None:
            line += " (min %.6f)" % min_cosine
        if close and (min_cosine is None or cosine >= min_cosine):
            report.append("ok   " + line)
        else:
            problems.append("FAIL " + line)
    return problems, report
