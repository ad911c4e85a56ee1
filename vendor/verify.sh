#!/usr/bin/env bash
# Check that every vendored crate is the published crate plus its patches, byte for byte.
#
# For each vendor/<name>/ (a crate at the version its Cargo.toml states), fetch that version
# from the crates.io registry with cargo itself, apply vendor/<name>-*.patch in name order,
# and compare src/, LICENSE, README.md and Cargo.toml with the copy here. The only other
# file allowed in a copy is an empty rustfmt.toml (it keeps `cargo fmt` off the copy).
# Exit status 1 names the first file that differs. Run by .ci/run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
status=0
for dir in "$root"/vendor/*/; do
    dir="${dir%/}"
    name="$(basename "$dir")"
    version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$dir/Cargo.toml" | head -1)"
    if [[ -z "$version" ]]; then
        echo "vendor/$name: no version in its Cargo.toml" >&2
        exit 1
    fi
    # A throwaway package that depends on exactly that version: `cargo fetch` downloads
    # the published .crate into cargo's cache (checked against the index's checksum).
    probe="$work/probe-$name"
    mkdir -p "$probe/src"
    : >"$probe/src/lib.rs"
    cat >"$probe/Cargo.toml" <<TOML
[package]
name = "vendor-probe"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
$name = { version = "=$version", default-features = false }
TOML
    cargo fetch --quiet --manifest-path "$probe/Cargo.toml"
    crate_file="$(ls "$cargo_home"/registry/cache/*/"$name-$version.crate" | head -1)"
    tar xzf "$crate_file" -C "$work"
    upstream="$work/$name-$version"
    for p in "$root/vendor/$name"-*.patch; do
        [[ -e "$p" ]] || continue
        patch --quiet --forward -p1 -d "$upstream" <"$p" >/dev/null
    done
    for item in src LICENSE README.md Cargo.toml; do
        if ! diff -r -q "$upstream/$item" "$dir/$item" >&2; then
            echo "vendor/$name/$item is not crates.io's $name $version plus vendor/$name-*.patch" >&2
            status=1
        fi
    done
    for extra in "$dir"/* "$dir"/.[!.]*; do
        [[ -e "$extra" ]] || continue
        case "$(basename "$extra")" in
        src | LICENSE | README.md | Cargo.toml) ;;
        rustfmt.toml) [[ ! -s "$extra" ]] || { echo "vendor/$name/rustfmt.toml is not empty" >&2; status=1; } ;;
        *)
            echo "vendor/$name/$(basename "$extra") is not part of the published crate" >&2
            status=1
            ;;
        esac
    done
    [[ $status -eq 0 ]] && echo "vendor/$name: crates.io's $name $version plus $(ls "$root/vendor/$name"-*.patch 2>/dev/null | wc -l) patch(es), byte for byte"
done
exit $status
