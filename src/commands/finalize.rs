//! `physworld finalize`.

use physworld_pipeline::{finalize, open_storage};

/// Arguments of `finalize`.
#[derive(clap::Args)]
pub struct Args {
    /// The dataset folder whose shards `generate --shard` workers wrote.
    #[command(flatten)]
    data: super::DataArg,
    /// Print meta/info.json.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.data.existing("the folder `generate --shard` workers wrote")?;
    let info = finalize(open_storage(dir)?.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!(
            "{}: finalised suite `{}` ({}): {} episodes, {} frames in {} files",
            dir.display(),
            info.suite["suite"]["name"].as_str().unwrap_or("?"),
            info.suite_hash,
            info.total_episodes,
            info.total_frames,
            info.files.len()
        );
    }
    Ok(())
}
