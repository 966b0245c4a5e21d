#!/usr/bin/env bash
# Installs WordNet 3.0 for NLTK's METEOR into $PREFIX/nltk_data (NLTK searches sys.prefix/nltk_data,
# so a venv's prefix makes it visible to that venv only). Offline-friendly: it builds the corpus from
# Debian's wordnet-base + wordnet-sense-index packages (the same WordNet 3.0 that NLTK ships), and only
# falls back to nltk.download when apt is not available.
set -euo pipefail
PREFIX=${1:?usage: install-wordnet.sh PREFIX (e.g. .venv)}
PY="$PREFIX/bin/python"
here=$(cd "$(dirname "$0")/.." && pwd)
target="$PREFIX/nltk_data/corpora/wordnet"

if "$PY" -c "from nltk.corpus import wordnet as wn; assert wn.synsets('dog')" 2>/dev/null; then
  echo "WordNet: already available to NLTK"; exit 0
fi

if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  ( cd "$work"
    if ! apt-get download wordnet-base wordnet-sense-index >/dev/null 2>&1; then
      [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null
      apt-get download wordnet-base wordnet-sense-index >/dev/null
    fi
    for deb in ./*.deb; do dpkg-deb -x "$deb" root; done )
  mkdir -p "$target"
  cp "$work"/root/usr/share/wordnet/* "$target"/
  cp "$here/src/hybridcl/resources/wordnet/lexnames" "$target"/  # Debian does not package it
  echo "WordNet: installed from Debian packages into $target"
else
  "$PY" -m nltk.downloader -q -d "$PREFIX/nltk_data" wordnet
  echo "WordNet: downloaded with nltk into $PREFIX/nltk_data"
fi
"$PY" -c "from nltk.corpus import wordnet as wn; assert wn.synsets('dog'), 'WordNet install failed'"
