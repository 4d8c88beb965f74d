"""Minimum s-t cut of a small directed graph with float capacities (Edmonds-Karp max-flow).

The planner's graphs have a few hundred vertices, so the plain O(V E^2) algorithm is instant and
easy to check."""
from __future__ import annotations

from collections import deque

INF = float("inf")
EPS = 1e-12


class FlowGraph:
    def __init__(self) -> None:
        self.index: dict[object, int] = {}
        self.cap: list[dict[int, float]] = []

    def vertex(self, key) -> int:
        if key not in self.index:
            self.index[key] = len(self.cap)
            self.cap.append({})
        return self.index[key]

    def add_edge(self, a, b, capacity: float) -> None:
        u, v = self.vertex(a), self.vertex(b)
        self.cap[u][v] = self.cap[u].get(v, 0.0) + capacity
        self.cap[v].setdefault(u, 0.0)          # residual edge

    def min_cut(self, source, sink) -> tuple[float, set]:
        """(cut value, the keys on the source side). Infinite capacities stay infinite: a value of
        INF means no finite cut exists."""
        s, t = self.vertex(source), self.vertex(sink)
        residual = [dict(edges) for edges in self.cap]
        flow = 0.0
        while True:
            parent = {s: None}
            queue = deque([s])
            while queue and t not in parent:
                u = queue.popleft()
                for v, c in residual[u].items():
                    if c > EPS and v not in parent:
                        parent[v] = u
                        queue.append(v)
            if t not in parent:
                break
            path, v = [], t
            while parent[v] is not None:
                path.append((parent[v], v))
                v = parent[v]
            push = min(residual[u][v] for u, v in path)
            if push == INF:
                return INF, set(self.index)
            for u, v in path:
                residual[u][v] -= push
                residual[v][u] = residual[v].get(u, 0.0) + push
            flow += push
        reached, queue = {s}, deque([s])
        while queue:
            u = queue.popleft()
            for v, c in residual[u].items():
                if c > EPS and v not in reached:
                    reached.add(v)
                    queue.append(v)
        keys = {k for k, i in self.index.items() if i in reached}
        return flow, keys
