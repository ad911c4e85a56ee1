//! Items as text: the scene as structured text (objects, shapes, sizes, masses, positions
//! in metres, velocities, time step), the question and the allowed answers.

use physworld_pipeline::{EpisodeFrames, EpisodeMeta};

use crate::tasks::{Item, TaskKind, half, pos, seen, shape_name, vel};

/// Frames between the states listed in a choice prompt (0.1 s at 30 fps).
pub const FRAME_STEP: usize = 3;
/// Frames between the states listed in a whole-episode (VoE) prompt (0.2 s at 30 fps).
pub const VOE_FRAME_STEP: usize = 6;

fn v3(v: [f32; 3]) -> String {
    format!("({:.2}, {:.2}, {:.2})", v[0], v[1], v[2])
}

/// The scene of `e` over frames `0..observe` (every `step`th and the last), to the
/// centimetre.
pub fn scene(e: &EpisodeFrames, meta: &EpisodeMeta, observe: usize, fps: u32, step: usize) -> String {
    let s = e.slots;
    let dt = 1.0 / fps.max(1) as f64;
    let mut out = format!(
        "Units: metres, seconds, kilograms. Gravity is 9.81 m/s^2 along -y; the floor is the plane y = 0. \
         Frames are {dt:.4} s apart ({fps} per second).\nObjects (half extents along x, y, z):\n"
    );
    for o in 0..s {
        if (0..observe).any(|f| e.present[f * s + o]) {
            let k = (0..observe).find(|f| e.present[f * s + o]).unwrap_or(0);
            out.push_str(&format!(
                "- object {o}: {}, half extents {}, mass {:.3} kg\n",
                shape_name(e.shape[k * s + o]),
                v3(half(e, k, o)),
                meta.mass.get(o).copied().unwrap_or(0.0)
            ));
        }
    }
    out.push_str("Observed states (position; velocity) of the visible objects:\n");
    let mut frames: Vec<usize> = (0..observe).step_by(step.max(1)).collect();
    if observe > 0 && frames.last() != Some(&(observe - 1)) {
        frames.push(observe - 1);
    }
    for f in frames {
        let objs: Vec<String> = (0..s)
            .filter(|&o| seen(e, f, o))
            .map(|o| format!("object {o} {}; {}", v3(pos(e, f, o)), v3(vel(e, f, o))))
            .collect();
        let hidden = if objs.is_empty() { "nothing visible".to_string() } else { objs.join(" | ") };
        out.push_str(&format!("t={:.3}s: {hidden}\n", f as f64 * dt));
    }
    out
}

/// The question of a choice item and its allowed answers.
pub fn question(it: &Item, e: &EpisodeFrames, fps: u32) -> String {
    let end = e.frames as f64 / fps.max(1) as f64;
    match (it.task, it.question.as_str()) {
        (TaskKind::Contact, _) => match it.objects[..] {
            [a, b] => format!("Question: will object {a} touch object {b} at any time before t={end:.2}s?"),
            [a] => format!("Question: will object {a} reach the marked goal zone at any time before t={end:.2}s?"),
            _ => "Question: will the agent object touch its target?".into(),
        },
        (_, "tower_falls") => format!("Question: will the stack of objects fall over before t={end:.2}s?"),
        (_, "first_floor") => "Question: which of these objects will touch the floor (y = 0) first?".into(),
        _ => "Question: is this trajectory physically possible?".into(),
    }
}

/// The system prompt.
pub const SYSTEM: &str = "You are a careful physicist. You predict what happens in short rigid-body simulations \
from the states you are given. Answer with one of the allowed answers only.";

/// The user message for a choice item.
pub fn choice_prompt(it: &Item, e: &EpisodeFrames, meta: &EpisodeMeta, fps: u32) -> String {
    format!(
        "{}\n{}\nAllowed answers: {}.\nReply as JSON {{\"answer\": \"...\"}} or end with a line `Answer: <answer>`.",
        scene(e, meta, it.observe, fps, FRAME_STEP),
        question(it, e, fps),
        it.choices.join(", ")
    )
}

/// The user message asking whether one whole episode is physically possible.
pub fn voe_prompt(e: &EpisodeFrames, meta: &EpisodeMeta, fps: u32) -> String {
    format!(
        "{}\nObjects may pass behind an occluder and be hidden for a while.\nQuestion: is everything in this \
         recording physically possible (objects do not vanish, appear, teleport, change shape, pass through \
         solids or float)?\nAllowed answers: possible, impossible.\nReply as JSON {{\"answer\": \"...\"}} or end \
         with a line `Answer: <answer>`.",
        scene(e, meta, e.frames, fps, VOE_FRAME_STEP)
    )
}

/// Parse a free-text or JSON reply into one of `choices` (case-insensitive): a JSON object
/// with `answer`, else the last `Answer: X` line, else a reply that is exactly a choice.
pub fn parse_answer(text: &str, choices: &[String]) -> Option<usize> {
    let find = |s: &str| {
        let s = s.trim().trim_matches(|c: char| c == '"' || c == '.' || c == '`' || c == '*').trim();
        choices.iter().position(|c| c.eq_ignore_ascii_case(s))
    };
    let trimmed = text.trim();
    let json_part = trimmed.find('{').and_then(|a| trimmed.rfind('}').map(|b| &trimmed[a..=b]));
    if let Some(j) = json_part
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(j)
        && let Some(a) = v.get("answer").and_then(|a| a.as_str())
    {
        return find(a);
    }
    if let Some(line) = trimmed.lines().rev().find(|l| l.to_ascii_lowercase().trim_start().starts_with("answer:")) {
        return find(&line.trim_start()[7..]);
    }
    find(trimmed)
}

#[cfg(test)]
mod tests {
    use super::parse_answer;

    #[test]
    fn answers_parse_from_json_answer_lines_and_bare_words() {
        let c = vec!["yes".to_string(), "no".to_string()];
        assert_eq!(parse_answer("{\"answer\": \"No\"}", &c), Some(1));
        assert_eq!(parse_answer("```json\n{\n  \"answer\": \"yes\"\n}\n```", &c), Some(0));
        assert_eq!(parse_answer("The ball rolls on.\nAnswer: yes.", &c), Some(0));
        assert_eq!(parse_answer("no", &c), Some(1));
        assert_eq!(parse_answer("maybe", &c), None);
        assert_eq!(parse_answer("{\"answer\": \"perhaps\"}", &c), None);
        let objs = vec!["object 2".to_string(), "object 5".to_string()];
        assert_eq!(parse_answer("Answer: object 5", &objs), Some(1));
    }
}
