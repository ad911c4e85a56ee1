//! Distance to a goal around the obstacles on a table top: the oracle's cost on
//! `plan-push` ([`crate::plan_push::PushOracle`]).
//!
//! A straight-line distance has a local minimum in front of a wall standing between a
//! puck and its goal: a receding-horizon search that looks a second ahead stays pressed
//! against it. [`CostToGo`] replaces it by the length of the shortest path that keeps the
//! puck's centre clear of every obstacle (each static body standing on the table, its
//! footprint inflated by the puck's radius): exactly the straight-line distance where the
//! goal is in sight, and otherwise the length of a path through a grid of
//! [`CostToGo::CELL`] cells, seeded by the cells that see the goal (Dijkstra, 8
//! neighbours). Where nothing stands on the table it is the straight-line distance
//! everywhere.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use physworld_pipeline::SceneBox;
use physworld_sim::math::{dist, quat_rotate};

/// [`SceneBox::kind`]s that are not obstacles: the floor, the table and goal zones.
const NOT_OBSTACLES: [u8; 3] = [0, 4, 6];

/// A static body's footprint on the table, inflated by the puck's radius.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    centre: [f32; 2],
    /// Unit axes of the box's local x and z, projected on the table.
    axes: [[f32; 2]; 2],
    half: [f32; 2],
}

impl Footprint {
    fn contains(&self, p: [f32; 2]) -> bool {
        let d = [p[0] - self.centre[0], p[1] - self.centre[1]];
        (0..2).all(|k| (d[0] * self.axes[k][0] + d[1] * self.axes[k][1]).abs() <= self.half[k])
    }
}

/// The footprints of the obstacles among `statics` (the static bodies other than floor,
/// table and zones whose vertical extent overlaps a puck of `height` resting on a table
/// top at height `top`), inflated by `radius`.
fn footprints(statics: &[SceneBox], top: f32, radius: f32, height: f32) -> Vec<Footprint> {
    let mut out = Vec::new();
    for s in statics.iter().filter(|s| !NOT_OBSTACLES.contains(&s.kind)) {
        // The box's world-space half extent along y (any rotation).
        let axis = |v: [f32; 3]| quat_rotate(s.rotation, v);
        let local = [axis([1.0, 0.0, 0.0]), axis([0.0, 1.0, 0.0]), axis([0.0, 0.0, 1.0])];
        let hy: f32 = (0..3).map(|k| (local[k][1] * s.half_extents[k]).abs()).sum();
        if s.position[1] + hy <= top || s.position[1] - hy >= top + height {
            continue;
        }
        let flat = |v: [f32; 3]| {
            let n = v[0].hypot(v[2]);
            if n > 1e-6 { [v[0] / n, v[2] / n] } else { [0.0, 0.0] }
        };
        out.push(Footprint {
            centre: [s.position[0], s.position[2]],
            axes: [flat(local[0]), flat(local[2])],
            half: [s.half_extents[0] + radius, s.half_extents[2] + radius],
        });
    }
    out
}

/// Whether a puck of `radius` and `height` centred at `p` is within `gap` of an obstacle
/// among `statics` (as [`CostToGo::new`] finds them; the table's top from the table, else
/// from `p`), so that a force may be pressing it against one.
pub(crate) fn obstacle_within(statics: &[SceneBox], p: [f32; 3], radius: f32, height: f32, gap: f32) -> bool {
    let top = statics.iter().find(|s| s.kind == 4).map_or(p[1] - height / 2.0, |t| t.position[1] + t.half_extents[1]);
    footprints(statics, top, radius + gap, height).iter().any(|f| f.contains([p[0], p[2]]))
}

/// Shortest-path distance to a goal on a table top around the obstacles on it.
#[derive(Debug, Clone)]
pub struct CostToGo {
    goal: [f32; 3],
    obstacles: Vec<Footprint>,
    /// The grid: its corner (least x and z), cells along x and z, and each cell centre's
    /// distance to the goal (infinite where blocked or cut off). Empty without obstacles.
    origin: [f32; 2],
    n: [usize; 2],
    dist: Vec<f32>,
    /// The least and greatest x and z of cell centres clear of the table's edges, where
    /// the grid keeps a clearance from them.
    edge: Option<([f32; 2], [f32; 2])>,
    /// Whether any cell has a finite distance (the goal is not cut off).
    reachable: bool,
}

impl CostToGo {
    /// Grid cell size, m.
    pub const CELL: f32 = 0.02;

    /// The distance field to `goal` on the table of `statics` (the static body of kind 4;
    /// without one, the box holding the goal and every static within 2 m) for a puck of
    /// radius `radius` and height `height` whose base rests at the table's top. Obstacles
    /// are the static bodies other than floor and table whose vertical extent overlaps the
    /// puck's.
    pub fn new(statics: &[SceneBox], goal: [f32; 3], radius: f32, height: f32) -> CostToGo {
        Self::build(statics, goal, radius, height, 0.0)
    }

    /// As [`CostToGo::new`], with the grid's cells within `edge` of the table's edges
    /// blocked too (paths keep that far from them; straight segments and the goal are
    /// not checked against the edges: the table top is convex).
    fn build(statics: &[SceneBox], goal: [f32; 3], radius: f32, height: f32, edge: f32) -> CostToGo {
        let table = statics.iter().find(|s| s.kind == 4);
        let top = table.map_or(goal[1] - height, |t| t.position[1] + t.half_extents[1]);
        let obstacles = footprints(statics, top, radius, height);
        let mut out =
            CostToGo { goal, obstacles, origin: [0.0; 2], n: [0, 0], dist: Vec::new(), edge: None, reachable: false };
        if out.obstacles.is_empty() {
            return out;
        }
        let (lo, hi) = match table {
            Some(t) => (
                [t.position[0] - t.half_extents[0], t.position[2] - t.half_extents[2]],
                [t.position[0] + t.half_extents[0], t.position[2] + t.half_extents[2]],
            ),
            None => ([goal[0] - 2.0, goal[2] - 2.0], [goal[0] + 2.0, goal[2] + 2.0]),
        };
        let n = [((hi[0] - lo[0]) / Self::CELL).ceil() as usize, ((hi[1] - lo[1]) / Self::CELL).ceil() as usize];
        out.origin = lo;
        out.n = n;
        if table.is_some() && edge > 0.0 {
            out.edge = Some(([lo[0] + edge, lo[1] + edge], [hi[0] - edge, hi[1] - edge]));
        }
        out.dist = vec![f32::INFINITY; n[0] * n[1]];
        let mut heap = BinaryHeap::new();
        for i in 0..n[0] {
            for j in 0..n[1] {
                let c = out.centre(i, j);
                if out.blocked(c) || out.near_edge(c) || !out.in_sight(c) {
                    continue;
                }
                let d = c[0] - goal[0];
                let e = c[1] - goal[2];
                let v = d.hypot(e);
                out.dist[i * n[1] + j] = v;
                heap.push(Reverse((v.to_bits(), i, j)));
            }
        }
        // Non-negative f32s order as their bits do.
        while let Some(Reverse((bits, i, j))) = heap.pop() {
            let here = f32::from_bits(bits);
            if here > out.dist[i * n[1] + j] {
                continue;
            }
            for (di, dj) in [(-1i64, -1i64), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)] {
                let (a, b) = (i as i64 + di, j as i64 + dj);
                if a < 0 || b < 0 || a >= n[0] as i64 || b >= n[1] as i64 {
                    continue;
                }
                let (a, b) = (a as usize, b as usize);
                let c = out.centre(a, b);
                if out.blocked(c) || out.near_edge(c) {
                    continue;
                }
                let v = here + Self::CELL * if di != 0 && dj != 0 { std::f32::consts::SQRT_2 } else { 1.0 };
                if v < out.dist[a * n[1] + b] {
                    out.dist[a * n[1] + b] = v;
                    heap.push(Reverse((v.to_bits(), a, b)));
                }
            }
        }
        out.reachable = out.dist.iter().any(|d| d.is_finite());
        out
    }

    fn centre(&self, i: usize, j: usize) -> [f32; 2] {
        [self.origin[0] + (i as f32 + 0.5) * Self::CELL, self.origin[1] + (j as f32 + 0.5) * Self::CELL]
    }

    /// The grid cell holding `p` (by its x and z), if it is on the grid.
    fn cell(&self, p: [f32; 3]) -> Option<(usize, usize)> {
        let (fi, fj) = ((p[0] - self.origin[0]) / Self::CELL, (p[2] - self.origin[1]) / Self::CELL);
        if fi < 0.0 || fj < 0.0 || fi >= self.n[0] as f32 || fj >= self.n[1] as f32 {
            return None;
        }
        Some((fi as usize, fj as usize))
    }

    fn blocked(&self, p: [f32; 2]) -> bool {
        self.obstacles.iter().any(|o| o.contains(p))
    }

    fn near_edge(&self, p: [f32; 2]) -> bool {
        self.edge.is_some_and(|(lo, hi)| p[0] < lo[0] || p[1] < lo[1] || p[0] > hi[0] || p[1] > hi[1])
    }

    /// Where to look from, at `p`: `p` itself where it is clear of the obstacles, else the
    /// centre of the nearest clear cell within two cells of it (a puck touching an
    /// obstacle, its centre on the inflated footprint), if any.
    fn lookout(&self, p: [f32; 3]) -> Option<[f32; 2]> {
        let flat = [p[0], p[2]];
        if !self.blocked(flat) {
            return Some(flat);
        }
        let (i, j) = self.cell(p)?;
        let mut best: Option<(f32, [f32; 2])> = None;
        for a in i.saturating_sub(2)..(i + 3).min(self.n[0]) {
            for b in j.saturating_sub(2)..(j + 3).min(self.n[1]) {
                let c = self.centre(a, b);
                let d = (c[0] - flat[0]).hypot(c[1] - flat[1]);
                if !self.blocked(c) && best.is_none_or(|(e, _)| d < e) {
                    best = Some((d, c));
                }
            }
        }
        best.map(|(_, c)| c)
    }

    /// Whether the straight segment from `p` to the goal is clear (checked every half cell).
    fn in_sight(&self, p: [f32; 2]) -> bool {
        self.clear(p, [self.goal[0], self.goal[2]])
    }

    /// Whether the straight segment from `p` to `q` is clear (checked every half cell).
    fn clear(&self, p: [f32; 2], q: [f32; 2]) -> bool {
        let len = (q[0] - p[0]).hypot(q[1] - p[1]);
        let steps = (len / (0.5 * Self::CELL)).ceil() as usize;
        (0..=steps).all(|k| {
            let t = if steps == 0 { 1.0 } else { k as f32 / steps as f32 };
            !self.blocked([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])])
        })
    }

    /// Whether anything stands on the table (else [`CostToGo::distance`] is the straight
    /// line's).
    pub fn has_obstacles(&self) -> bool {
        !self.obstacles.is_empty()
    }

    /// Distance from `p` to the goal: the straight line's where the goal is in sight (or
    /// `p` is off the grid, e.g. fallen off the table), else the shortest path's through
    /// the grid from the nearest reachable cell around `p`, with the height difference
    /// added in quadrature.
    pub fn distance(&self, p: [f32; 3]) -> f32 {
        let flat = [p[0], p[2]];
        if self.dist.is_empty() || self.in_sight(flat) {
            return dist(p, self.goal);
        }
        let Some((i, j)) = self.cell(p) else { return dist(p, self.goal) };
        let mut best = f32::INFINITY;
        for a in i.saturating_sub(1)..(i + 2).min(self.n[0]) {
            for b in j.saturating_sub(1)..(j + 2).min(self.n[1]) {
                let c = self.centre(a, b);
                best = best.min(self.dist[a * self.n[1] + b] + (c[0] - flat[0]).hypot(c[1] - flat[1]));
            }
        }
        if !best.is_finite() {
            // Inside an obstacle's inflated footprint and cut off: at least the line's.
            return dist(p, self.goal) + 1.0;
        }
        best.hypot(p[1] - self.goal[1])
    }
}

/// Waypoints round the obstacles on a table top, for planners that head straight for a
/// target (a PD controller, a latent planner whose energy is a distance to a goal
/// representation): from where the puck is, the goal itself where it is in sight, else
/// the corner to round first.
///
/// The corner is the point with the least distance to go along a field, among the points
/// the puck can reach in a straight line from where it is. The field's obstacles are
/// inflated by the puck's radius plus [`Route::MARGIN`], and its paths keep the puck's
/// radius from the table's edges (the whole puck stays on the table); "reached in a
/// straight line" means the segment is clear of the obstacles so inflated. With the
/// margin, the puck passes an obstacle with room to spare and, brought to the corner,
/// sees the goal past it; without it, the corner would lie on the edge of the line of
/// sight. Where that finds nothing (the puck within the margin of an obstacle, or a gap
/// only the margin closes), the margin is dropped first from the line of sight, then
/// from the field too. A puck touching an obstacle looks from the nearest clear cell
/// beside it.
/// It is a map-based global planner under a local one, as navigation stacks pair them: the
/// route comes from the observed static scene, not from a model.
#[derive(Debug, Clone)]
pub struct Route {
    tight: CostToGo,
    wide: CostToGo,
}

impl Route {
    /// Clearance beyond the puck's radius that waypoints keep from obstacles, m.
    pub const MARGIN: f32 = 0.05;

    /// The route to `goal` on the table of `statics` for a puck of `radius` and `height`
    /// (as [`CostToGo::new`]).
    pub fn new(statics: &[SceneBox], goal: [f32; 3], radius: f32, height: f32) -> Route {
        Route {
            tight: CostToGo::build(statics, goal, radius, height, radius),
            wide: CostToGo::build(statics, goal, radius + Self::MARGIN, height, radius),
        }
    }

    /// Where to head from `p`: the goal where it is in sight of `p`, nothing stands on the
    /// table, `p` is off the table's grid or no corner is in sight; else the corner to
    /// round (see [`Route`]), at the goal's height.
    pub fn waypoint(&self, p: [f32; 3]) -> [f32; 3] {
        let t = &self.tight;
        let goal = t.goal;
        if t.dist.is_empty() || t.cell(p).is_none() {
            return goal;
        }
        let Some(lookout) = t.lookout(p) else { return goal };
        if t.in_sight(lookout) {
            return goal;
        }
        // (field, line of sight, looking from): with the margin, then without it in the
        // line of sight, then without it at all. Only the tight sight looks from beside p:
        // within the margin of an obstacle, the wide sight sees nothing and the next pass
        // drops the margin.
        let here = [p[0], p[2]];
        for (field, sight, from) in [(&self.wide, &self.wide, here), (&self.wide, t, lookout), (t, t, lookout)] {
            if !field.reachable {
                continue;
            }
            let mut best: Option<(f32, [f32; 2])> = None;
            for i in 0..t.n[0] {
                for j in 0..t.n[1] {
                    let d = field.dist[i * t.n[1] + j];
                    if !d.is_finite() || best.is_some_and(|(b, _)| d >= b) {
                        continue;
                    }
                    let c = t.centre(i, j);
                    if sight.clear(from, c) {
                        best = Some((d, c));
                    }
                }
            }
            if let Some((_, c)) = best {
                return [c[0], goal[1], c[1]];
            }
        }
        goal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SceneBox {
        SceneBox { kind: 4, position: [0.0, 0.35, 0.0], rotation: [0.0, 0.0, 0.0, 1.0], half_extents: [0.8, 0.05, 0.8] }
    }

    #[test]
    fn an_empty_table_is_the_straight_line() {
        let c = CostToGo::new(&[table()], [0.3, 0.45, 0.2], 0.05, 0.04);
        assert!(!c.has_obstacles());
        for p in [[-0.5, 0.42, -0.6], [0.3, 0.42, 0.2], [0.0, -1.0, 0.0]] {
            assert_eq!(c.distance(p), dist(p, [0.3, 0.45, 0.2]));
        }
    }

    /// A wall 0.6 m long and 4 cm thick at the origin, along z: rotated 90° about y, its
    /// local x (0.3 m half length) lies along z.
    fn wall() -> SceneBox {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        SceneBox { kind: 1, position: [0.0, 0.45, 0.0], rotation: [0.0, s, 0.0, s], half_extents: [0.3, 0.05, 0.02] }
    }

    /// A puck 3 cm from the wall's face (its centre 10 cm from the wall's mid-plane, radius
    /// 5 cm, the wall's half thickness 2 cm) is within 4 cm of it and not within 2; past the wall's end,
    /// and with the wall above the puck, it is near nothing.
    #[test]
    fn a_puck_is_near_an_obstacle_by_its_gap_to_the_footprint() {
        let statics = [table(), wall()];
        let near = |p: [f32; 3], gap: f32| obstacle_within(&statics, p, 0.05, 0.05, gap);
        assert!(near([0.10, 0.425, 0.0], 0.04));
        assert!(!near([0.10, 0.425, 0.0], 0.02));
        assert!(near([-0.10, 0.425, 0.25], 0.04));
        assert!(!near([0.0, 0.425, 0.40], 0.04));
        let mut high = wall();
        high.position[1] = 0.6;
        assert!(!obstacle_within(&[table(), high], [0.10, 0.425, 0.0], 0.05, 0.05, 0.04));
    }

    /// A wall 0.6 m long across the line from (-0.5, 0) to the goal at (0.5, 0): the way
    /// round is longer than the line, by about what the geometry says, and the field
    /// falls along the way round.
    #[test]
    fn a_wall_lengthens_the_way_to_the_goal_by_the_detour() {
        let wall = wall();
        let goal = [0.5, 0.4, 0.0];
        let c = CostToGo::new(&[table(), wall], goal, 0.05, 0.04);
        assert!(c.has_obstacles());
        let start = [-0.5, 0.4, 0.0];
        // Round the wall's end (inflated: 0.35 m off the line, 0.07 m thick).
        let corner = 0.35f32;
        let detour = 2.0 * (0.5f32 - 0.07).hypot(corner) + 2.0 * 0.07;
        let d = c.distance(start);
        assert!(d > 1.0 + 0.1, "longer than the line: {d}");
        assert!((d - detour).abs() < 0.08, "{d} against {detour}");
        // Beyond the wall's end the goal is in sight again: the line's distance.
        let side = [0.0, 0.4, 0.5];
        assert_eq!(c.distance(side), dist(side, goal));
        // Moving toward the end of the wall brings the goal nearer than staying put.
        assert!(c.distance([-0.3, 0.4, 0.3]) < d);
        // A wall above the puck's height is no obstacle.
        let high = SceneBox { position: [0.0, 0.7, 0.0], ..wall };
        assert!(!CostToGo::new(&[table(), high], goal, 0.05, 0.04).has_obstacles());
    }

    /// The route round the wall of the test above: from behind the wall, a corner beyond
    /// one of its ends, clear of it by the margin, in sight of both the puck and the goal;
    /// where the goal is in sight, the goal.
    #[test]
    fn the_route_rounds_a_wall_by_its_nearer_end_and_then_heads_for_the_goal() {
        let wall = wall();
        let goal = [0.5, 0.4, 0.0];
        let (radius, height) = (0.05, 0.04);
        let r = Route::new(&[table(), wall], goal, radius, height);
        let tight = CostToGo::new(&[table(), wall], goal, radius, height);
        // Behind the wall and a little toward +z: round the +z end.
        let p = [-0.5, 0.4, 0.1];
        let w = r.waypoint(p);
        assert_ne!(w, goal);
        assert_eq!(w[1], goal[1], "at the goal's height");
        assert!(w[2] > 0.3 + radius + 0.5 * Route::MARGIN, "beyond the +z end with room: {w:?}");
        assert!(w[2] < 0.3 + radius + Route::MARGIN + 0.15, "at the corner, not far past it: {w:?}");
        assert!(w[0].abs() < 0.15, "beside the wall: {w:?}");
        assert!(tight.clear([p[0], p[2]], [w[0], w[2]]), "the puck reaches it in a straight line");
        assert!(tight.in_sight([w[0], w[2]]), "the goal is in sight from it");
        // Pressed against the wall (inside the margin): still a corner.
        let w = r.waypoint([-0.08, 0.4, 0.05]);
        assert!(w[2] > 0.3 + radius, "{w:?}");
        // Toward -z: the -z end.
        assert!(r.waypoint([-0.5, 0.4, -0.1])[2] < -(0.3 + radius));
        // In sight of the goal, or with nothing on the table: the goal.
        assert_eq!(r.waypoint([0.0, 0.4, 0.5]), goal);
        assert_eq!(r.waypoint([0.3, 0.4, 0.0]), goal);
        assert_eq!(Route::new(&[table()], goal, radius, height).waypoint(p), goal);
        // Off the table's grid: the goal.
        assert_eq!(r.waypoint([-3.0, 0.4, 0.0]), goal);
        // Touching the wall (its centre 1 mm into the footprint inflated by its radius):
        // the corner seen from beside it, not the goal through the wall.
        let touching = [-(0.02 + radius) + 0.001, 0.4, 0.05];
        assert!(!tight.clear([touching[0], touching[2]], [touching[0], touching[2]]), "on the footprint");
        let w = r.waypoint(touching);
        assert!(w[2] > 0.3 + radius, "{w:?}");
    }

    /// A wall along z at x = 0, its half length `half` about `z`.
    fn wall_at(z: f32, half: f32) -> SceneBox {
        SceneBox { position: [0.0, 0.45, z], half_extents: [half, 0.05, 0.02], ..wall() }
    }

    /// Two walls across the table with a 16 cm gap between them: wide enough for the puck
    /// (10 cm across) to pass, not with 5 cm to spare on each side. The route goes through
    /// the gap rather than at the goal through the wall.
    #[test]
    fn the_route_uses_a_gap_that_only_the_margin_closes() {
        let (radius, height) = (0.05, 0.04);
        let goal = [0.5, 0.4, 0.0];
        // From the table's edge (z = -0.8) to z = 0.2, and from z = 0.36 to the other edge.
        let walls = [table(), wall_at(-0.3, 0.5), wall_at(0.58, 0.22)];
        let r = Route::new(&walls, goal, radius, height);
        let tight = CostToGo::new(&walls, goal, radius, height);
        let p = [-0.5, 0.4, 0.0];
        let w = r.waypoint(p);
        assert_ne!(w, goal);
        assert!((w[2] - 0.28).abs() < 0.03 && w[0].abs() < 0.2, "in the gap: {w:?}");
        assert!(tight.clear([p[0], p[2]], [w[0], w[2]]), "reached in a straight line");
    }

    /// No waypoint, from anywhere on the table, lies nearer the table's edges than the
    /// puck's radius plus the margin where the way round is far from them (the wall of
    /// the tests above, both ends 0.5 m from the edges), or than the puck's radius where
    /// the only way round passes them (a wall from one edge of the table to 18 cm short of
    /// the other: room for the puck and its margin from the wall, not for the margin from
    /// the edge as well).
    #[test]
    fn waypoints_keep_clear_of_the_table_edges() {
        let (radius, height) = (0.05, 0.04);
        let goal = [0.5, 0.4, 0.0];
        for (wall, clearance) in [(wall(), radius + Route::MARGIN), (wall_at(-0.09, 0.71), radius)] {
            let r = Route::new(&[table(), wall], goal, radius, height);
            let mut corners = 0;
            for i in -7..=7 {
                for j in -7..=7 {
                    let p = [i as f32 * 0.1, 0.4, j as f32 * 0.1];
                    let w = r.waypoint(p);
                    if w == goal {
                        continue;
                    }
                    corners += 1;
                    let room = 0.8 - w[0].abs().max(w[2].abs());
                    assert!(room >= clearance - 1e-4, "{p:?} -> {w:?}");
                }
            }
            assert!(corners > 10, "{corners} points behind the wall");
        }
    }
}
