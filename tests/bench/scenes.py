"""The gate scenes: short deterministic clips, each built around one way a real gate differs from the
project's own bench scene (see BENCHMARKS.md, "Gate scenes"). Each vehicle has its own path; the
plates differ across all scenes, so no two vehicles can merge into one pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from agent.tools.scene import Parked, SceneSpec, Sign, Vehicle, Waypoint, plate_texts

FPS = 15.0
LEAD_IN_S = 5.0  # every client (two agents, the naive script) has connected before the first vehicle
LINE = 0.85  # bumper line at the stop, share of the frame height
FAR = (0.45, 0.15)  # bumper line and scale where a vehicle comes into view from far away

ORDER = ("signs", "parked", "edge", "queue", "wait", "leave", "night", "rain")
PER_SCENE = 6  # plates reserved per scene


@functools.cache
def _all_plates() -> list[str]:
    return plate_texts(PER_SCENE * len(ORDER), seed=2026)


def _plates(scene: str, n: int) -> list[str]:
    """``n`` plates for ``scene``: its own slice of one list, so no plate appears in two scenes."""
    assert n <= PER_SCENE
    k = ORDER.index(scene) * PER_SCENE
    return _all_plates()[k : k + n]


def front(plate: str, t0: float, *, drive_in_s: float = 2.0, stop_s: float = 2.0, out_s: float = 1.5,
          kind: str = "car", lettering: str = "") -> Vehicle:
    """From far away up to the stop line, a stop, off to the right (the project's usual vehicle)."""
    t1, t2 = t0 + drive_in_s, t0 + drive_in_s + stop_s
    path = (Waypoint(t0, 0.5, FAR[0], FAR[1]), Waypoint(t1, 0.5, LINE, 1.0), Waypoint(t2, 0.5, LINE, 1.0),
            Waypoint(t2 + out_s, 1.4, LINE, 1.0))
    return Vehicle(plate, path, stop=1, leave=2, kind=kind, lettering=lettering)


def _spec(vehicles: list[Vehicle], tail_s: float = 2.0, **kw: object) -> SceneSpec:
    return SceneSpec(plates=tuple(v.plate for v in vehicles), vehicles=tuple(vehicles), fps=FPS,
                     lead_in_s=LEAD_IN_S, tail_s=tail_s, stop_line=LINE, clock_overlay=True, noise_sigma=3.0,
                     **kw)  # type: ignore[arg-type]


def _spaced(name: str, n: int, every_s: float = 7.5, **kw: object) -> list[Vehicle]:
    return [front(p, LEAD_IN_S + i * every_s, **kw) for i, p in enumerate(_plates(name, n))]  # type: ignore[arg-type]


def signs() -> SceneSpec:
    """A "PRIVATE / NO PARKING" sign and a plate-shaped unit sign on the wall, a parked van with its
    lettering, and a delivery van among the cars with lettering above its windscreen."""
    cars = _spaced("signs", 3)
    p = cars[1].plate
    cars[1] = front(p, cars[1].path[0].t_s, kind="van", lettering="FAST PARCELS")
    return _spec(cars, signs=(Sign(("PRIVATE", "NO PARKING"), 0.66, 0.09, 0.12, 0.1),
                              Sign(("UNIT 14B",), 0.3, 0.16, 0.1, 0.032)),
                 parked=(Parked("", 0.88, 0.62, 0.42, kind="van", lettering="CITY FLOWERS / 0161 496 0321"),))


def parked() -> SceneSpec:
    """A car parked facing the camera at the side, its plate in view all along, while cars pass."""
    plates = _plates("parked", 4)
    return _spec(_spaced("parked", 3), parked=(Parked(plates[3], 0.13, 0.7, 0.6),))


def edge() -> SceneSpec:
    """Vehicles come in at the bottom edge of the frame (the plate cut off there at first) and drive
    up to the stop line, the same size all the way (a camera behind and above the lane)."""
    out = []
    for i, p in enumerate(_plates("edge", 3)):
        t0 = LEAD_IN_S + i * 7.0
        path = (Waypoint(t0, 0.5, 1.15, 1.0), Waypoint(t0 + 1.5, 0.5, 0.72, 1.0), Waypoint(t0 + 3.5, 0.5, 0.72, 1.0),
                Waypoint(t0 + 5.0, 1.4, 0.72, 1.0))
        out.append(Vehicle(p, path, stop=1, leave=2))
    return _spec(out)


def queue() -> SceneSpec:
    """Two vehicles in view at once, twice: the second waits beside and behind the first until the
    line is free, then moves up to it."""
    out = []
    plates = _plates("queue", 4)
    for j in range(2):
        t0 = LEAD_IN_S + j * 13.0
        out.append(front(plates[2 * j], t0, stop_s=4.0))
        t_free = t0 + 2.0 + 4.0  # the first drives off
        path = (Waypoint(t0 + 1.5, 0.5, FAR[0], FAR[1]), Waypoint(t0 + 3.5, 0.8, 0.66, 0.6),
                Waypoint(t_free, 0.8, 0.66, 0.6), Waypoint(t_free + 1.5, 0.5, LINE, 1.0),
                Waypoint(t_free + 3.5, 0.5, LINE, 1.0), Waypoint(t_free + 5.0, 1.4, LINE, 1.0))
        out.append(Vehicle(plates[2 * j + 1], path, stop=3, leave=4))
    return _spec(out)


def wait() -> SceneSpec:
    """Vehicles that stop and wait at the barrier for a long time (15 s, 10 s)."""
    a, b = _plates("wait", 2)
    return _spec([front(a, LEAD_IN_S, stop_s=15.0), front(b, LEAD_IN_S + 21.0, stop_s=10.0)])


def leave() -> SceneSpec:
    """Vehicles leaving: they come in at the bottom edge, close and large, and drive away from the
    camera, shrinking; one approaching vehicle between them."""
    out = []
    plates = _plates("leave", 3)
    for i, p in enumerate(plates):
        t0 = LEAD_IN_S + i * 7.0
        if i == 1:
            out.append(front(p, t0))
            continue
        path = (Waypoint(t0, 0.5, 1.2, 1.3), Waypoint(t0 + 1.0, 0.5, LINE, 1.0),
                Waypoint(t0 + 4.0, 0.5, FAR[0], FAR[1]))
        out.append(Vehicle(p, path, direction="leave"))
    return _spec(out)


def night() -> SceneSpec:
    """Night: a dark monochrome IR picture, bright plates, headlights blooming over the fronts."""
    return _spec(_spaced("night", 3), night=1.0)


def rain() -> SceneSpec:
    """Rain: streaks over everything, lower contrast, more noise."""
    return _spec(_spaced("rain", 3), rain=1.0)


SCENES: dict[str, Callable[[], SceneSpec]] = {
    "signs": signs, "parked": parked, "edge": edge, "queue": queue, "wait": wait, "leave": leave,
    "night": night, "rain": rain,
}
