//! `physworld render`: stills, frame sequences and contact sheets of a dataset's episodes,
//! for people without a display (feature `render`).

use std::path::PathBuf;

/// Arguments of `render`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  physworld render --data data/tiny --episode 3 --out still.png            one frame (RGB)
  physworld render --data data/tiny --episode 3 --out still.png --pass all RGB | segmentation | depth
  physworld render --data data/tiny --episode 3 --out frames/               every frame of every pass,
                                                                           a contact sheet and camera.json

Needs a build with the `render` feature (`cargo build --release --features render`) and a
Vulkan driver: a GPU's, or Mesa's CPU driver lavapipe (Debian: mesa-vulkan-drivers).")]
pub struct Args {
    #[command(flatten)]
    data: super::DataArg,
    /// Episode index (as `inspect` and the result files number them).
    #[arg(long, value_name = "N")]
    episode: u64,
    /// A `.png` file for one still, or a folder for the whole episode: `rgb/`,
    /// `segmentation/` (8-bit, object slot + 1 per pixel, 0 for statics and background),
    /// `depth/` (16-bit, millimetres along the optical axis, 0 where nothing was drawn),
    /// `contact_sheet.png` and `camera.json` (intrinsics, pose, renderer).
    #[arg(long, value_parser = super::path_arg, value_name = "FILE.png|DIR")]
    out: PathBuf,
    /// Frame of the still (with a `.png` --out); default the last frame.
    #[arg(long, value_name = "K")]
    frame: Option<usize>,
    /// What a still shows: `rgb`, `segmentation` (ids in distinct colours), `depth` (near is
    /// bright) or `all` side by side.
    #[arg(long, default_value = "rgb", value_name = "PASS")]
    pass: String,
    /// Image height in pixels (16-1024); the width follows the episode camera's aspect ratio.
    #[arg(long, default_value_t = 128, value_name = "PX")]
    size: u32,
    /// Replace an existing --out file, or write into a folder that already holds files.
    #[arg(long)]
    force: bool,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

/// The passes a still can show.
const PASSES: [&str; 4] = ["rgb", "segmentation", "depth", "all"];

#[cfg(not(feature = "render"))]
pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = (&args.data, args.episode, &args.out, args.frame, &args.pass, args.size, args.force, args.json, PASSES);
    anyhow::bail!(
        "this physworld was built without the renderer: rebuild with `cargo build --release --features render` \
         (and install a Vulkan driver; without a GPU, Mesa's lavapipe: `apt-get install mesa-vulkan-drivers`)"
    )
}

#[cfg(feature = "render")]
pub fn run(args: Args) -> anyhow::Result<()> {
    imp::run(args)
}

#[cfg(feature = "render")]
mod imp {
    use anyhow::{Context, bail};
    use physworld_pipeline::{Dataset, open_storage};
    use physworld_sim::render::{self, RenderedFrame, Renderer, png_bytes};

    use super::{Args, PASSES};

    pub fn run(args: Args) -> anyhow::Result<()> {
        if !PASSES.contains(&args.pass.as_str()) {
            bail!("--pass {}: unknown pass; allowed: {}", args.pass, PASSES.join(", "));
        }
        let still = args.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if !still && args.frame.is_some() {
            bail!(
                "--frame {}: only a still (--out FILE.png) takes a frame; a folder gets every frame",
                args.frame.unwrap_or(0)
            );
        }
        if !still {
            super::super::check_out_dir("--out", &args.out, "a .png file or a folder")?;
        }
        let taken =
            if still { args.out.exists() } else { std::fs::read_dir(&args.out).is_ok_and(|mut d| d.next().is_some()) };
        if taken && !args.force {
            bail!(
                "--out {}: already exists{}; pass --force to replace, or choose another --out",
                args.out.display(),
                if still { "" } else { " and holds files" }
            );
        }
        let dir = args.data.existing("a dataset folder from `physworld generate`")?;
        let ds = Dataset::open_storage(open_storage(dir)?)?;
        let episode = recorded_episode(&ds, args.episode)?;
        let cam = &episode.camera;
        let width = render::width_for(cam, args.size);
        let mut renderer = Renderer::new(width, args.size).context("--size")?;
        let n = episode.frames.len();
        let mut written = Vec::new();
        if still {
            let frame = args.frame.unwrap_or(n.saturating_sub(1));
            let f = renderer.render_frames(&episode, &[frame]).context("--frame")?.remove(0);
            let img = match args.pass.as_str() {
                "rgb" => Rgb::from_rgb(&f),
                "segmentation" => Rgb::segmentation(&f),
                "depth" => Rgb::depth(&f),
                _ => Rgb::row(&[Rgb::from_rgb(&f), Rgb::segmentation(&f), Rgb::depth(&f)]),
            };
            if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("--out {}", args.out.display()))?;
            }
            write(&args.out, &img.png()?)?;
            written.push(args.out.display().to_string());
        } else {
            let frames = renderer.render_episode(&episode)?;
            for sub in ["rgb", "segmentation", "depth"] {
                std::fs::create_dir_all(args.out.join(sub)).with_context(|| format!("--out {}", args.out.display()))?;
            }
            for (k, f) in frames.iter().enumerate() {
                let name = format!("{k:06}.png");
                write(&args.out.join("rgb").join(&name), &png_bytes::rgb(f.width, f.height, &f.rgb)?)?;
                write(
                    &args.out.join("segmentation").join(&name),
                    &png_bytes::gray8(f.width, f.height, &f.segmentation)?,
                )?;
                write(&args.out.join("depth").join(&name), &png_bytes::gray16(f.width, f.height, &f.depth_mm())?)?;
            }
            let sheet = contact_sheet(&frames, 8);
            write(&args.out.join("contact_sheet.png"), &sheet.png()?)?;
            let camera = serde_json::json!({
                "episode": args.episode,
                "width": width,
                "height": args.size,
                "frames": n,
                "fps": episode.fps,
                "intrinsics": render::intrinsics(cam, width, args.size),
                "camera_to_world": render::camera_to_world(cam),
                "convention": "pixel (u right, v down, centres at +0.5); camera x right, y up, looking down -z; depth along the optical axis",
                "renderer": renderer.info(),
            });
            write(&args.out.join("camera.json"), serde_json::to_string_pretty(&camera)?.as_bytes())?;
            written.push(format!(
                "{}/{{rgb,segmentation,depth}}/000000..{:06}.png",
                args.out.display(),
                n.saturating_sub(1)
            ));
            written.push(args.out.join("contact_sheet.png").display().to_string());
            written.push(args.out.join("camera.json").display().to_string());
        }
        if args.json {
            let j = serde_json::json!({"episode": args.episode, "frames": n, "width": width, "height": args.size,
                "written": written, "renderer": renderer.info()});
            println!("{}", serde_json::to_string_pretty(&j)?);
        } else {
            for w in &written {
                println!("wrote {w}");
            }
            println!("renderer: {}", renderer.info().id());
        }
        Ok(())
    }

    /// Episode `index` as recorded: the scene (camera, statics, zones, colours) re-drawn
    /// from the suite seed, the poses copied from the dataset's states.
    fn recorded_episode(ds: &Dataset, index: u64) -> anyhow::Result<physworld_sim::Episode> {
        let meta = ds.meta(index).context("--episode")?.clone();
        let first = ds
            .episodes()
            .iter()
            .find(|e| e.split == meta.split && e.sample_index == meta.sample_index)
            .map_or(index, |e| e.episode_index);
        let sample = ds.regenerate(&meta.split, meta.sample_index)?;
        let offset = (index - first) as usize;
        let Some(mut episode) = sample.episodes.into_iter().nth(offset) else {
            bail!("episode {index}: its sample no longer draws it (the dataset was made by another generator version)");
        };
        let stored = ds.episode(index)?;
        if stored.frames != episode.frames.len() || stored.slots < episode.objects.len() || meta.seed != episode.seed {
            bail!(
                "episode {index}: the scene re-drawn from the suite does not match the stored one \
                 (the dataset was made by another generator version than this build's {})",
                physworld_sim::GENERATOR_VERSION
            );
        }
        for (t, frame) in episode.frames.iter_mut().enumerate() {
            for (s, o) in frame.objects.iter_mut().enumerate() {
                let k = t * stored.slots + s;
                o.present = stored.present[k];
                o.position = std::array::from_fn(|d| stored.position[3 * k + d]);
                o.rotation = std::array::from_fn(|d| stored.rotation[4 * k + d]);
                o.size = std::array::from_fn(|d| stored.size[3 * k + d]);
                o.shape = match stored.shape[k] {
                    0 => physworld_sim::ShapeKind::Sphere,
                    1 => physworld_sim::ShapeKind::Box,
                    2 => physworld_sim::ShapeKind::Cylinder,
                    3 => physworld_sim::ShapeKind::Capsule,
                    _ => o.shape,
                };
            }
        }
        Ok(episode)
    }

    fn write(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
        std::fs::write(path, bytes).with_context(|| format!("--out {}", path.display()))
    }

    /// An 8-bit RGB picture being composed.
    struct Rgb {
        w: usize,
        h: usize,
        px: Vec<u8>,
    }

    /// Distinct colours for instance ids (0, background, is black).
    const PALETTE: [[u8; 3]; 10] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ];

    impl Rgb {
        fn blank(w: usize, h: usize) -> Self {
            Rgb { w, h, px: vec![255; w * h * 3] }
        }

        fn from_rgb(f: &RenderedFrame) -> Self {
            Rgb { w: f.width as usize, h: f.height as usize, px: f.rgb.clone() }
        }

        fn segmentation(f: &RenderedFrame) -> Self {
            let px = f
                .segmentation
                .iter()
                .flat_map(|&id| if id == 0 { [0, 0, 0] } else { PALETTE[(id as usize - 1) % PALETTE.len()] })
                .collect();
            Rgb { w: f.width as usize, h: f.height as usize, px }
        }

        /// Depth as grey, near bright, over the frame's own range; nothing drawn is black.
        fn depth(f: &RenderedFrame) -> Self {
            let drawn = f.depth.iter().copied().filter(|&d| d > 0.0);
            let (lo, hi) = drawn.fold((f32::INFINITY, 0.0f32), |(lo, hi), d| (lo.min(d), hi.max(d)));
            let span = (hi - lo).max(1e-6);
            let px = f
                .depth
                .iter()
                .flat_map(|&d| {
                    let g = if d > 0.0 { (255.0 - 215.0 * (d - lo) / span).round() as u8 } else { 0 };
                    [g, g, g]
                })
                .collect();
            Rgb { w: f.width as usize, h: f.height as usize, px }
        }

        /// Pictures of one height side by side, 2 px apart.
        fn row(parts: &[Rgb]) -> Self {
            let h = parts.iter().map(|p| p.h).max().unwrap_or(0);
            let w = parts.iter().map(|p| p.w).sum::<usize>() + 2 * parts.len().saturating_sub(1);
            let mut out = Rgb::blank(w, h);
            let mut x = 0;
            for p in parts {
                out.paste(p, x, 0);
                x += p.w + 2;
            }
            out
        }

        fn paste(&mut self, p: &Rgb, x0: usize, y0: usize) {
            for y in 0..p.h.min(self.h.saturating_sub(y0)) {
                let src = &p.px[y * p.w * 3..(y * p.w + p.w.min(self.w.saturating_sub(x0))) * 3];
                let at = ((y0 + y) * self.w + x0) * 3;
                self.px[at..at + src.len()].copy_from_slice(src);
            }
        }

        fn png(&self) -> anyhow::Result<Vec<u8>> {
            Ok(png_bytes::rgb(self.w as u32, self.h as u32, &self.px)?)
        }
    }

    /// Up to `columns` frames spread evenly over the episode, each a column of RGB,
    /// segmentation and depth.
    fn contact_sheet(frames: &[RenderedFrame], columns: usize) -> Rgb {
        let n = frames.len();
        let picks: Vec<usize> =
            if n <= columns { (0..n).collect() } else { (0..columns).map(|c| c * (n - 1) / (columns - 1)).collect() };
        let Some(first) = frames.first() else { return Rgb::blank(1, 1) };
        let (w, h) = (first.width as usize, first.height as usize);
        let mut sheet = Rgb::blank(picks.len() * (w + 2), 3 * (h + 2));
        for (c, &k) in picks.iter().enumerate() {
            let f = &frames[k];
            for (r, img) in [Rgb::from_rgb(f), Rgb::segmentation(f), Rgb::depth(f)].iter().enumerate() {
                sheet.paste(img, c * (w + 2), r * (h + 2));
            }
        }
        sheet
    }
}
