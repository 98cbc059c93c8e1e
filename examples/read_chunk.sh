#!/bin/sh
# Reads the first elements of one chunk through a zarrfs mount with dd and od: each file in
# an array's chunks/ directory holds one decoded chunk (C order, the full chunk shape, in
# the byte order of the array's dtype), and meta.json names the dtype, such as "<f4".
#
#   sh examples/read_chunk.sh /mnt/zarr/climate/temperature 0.0.0
#
# Prints the chunk's name, the dtype and its first 8 elements.
set -eu

dir="$1"
chunk="${2:-0}"
dtype="$(sed -n 's/^ *"dtype": "\(.*\)",*$/\1/p' "$dir/meta.json")"

order="$(printf %s "$dtype" | cut -c1)"   # < little-endian, > big-endian, | one byte
kind="$(printf %s "$dtype" | cut -c2)"    # f float, i signed, u unsigned, b boolean
size="$(printf %s "$dtype" | cut -c3-)"   # bytes per element
case "$kind" in
    f) type="f$size" ;;
    i) type="d$size" ;;
    u | b) type="u$size" ;;
    *) echo "read_chunk.sh: dtype $dtype is not a number type" >&2; exit 1 ;;
esac
endian=little
[ "$order" = ">" ] && endian=big

echo "chunk $chunk"
echo "dtype $dtype"
# dd reads just the first 8 elements; od turns them into numbers.
values="$(dd if="$dir/chunks/$chunk" bs="$size" count=8 status=none |
    od -A n -v -t "$type" --endian="$endian" | tr -s ' \n' '  ')"
echo "first$values" | sed 's/ *$//'
