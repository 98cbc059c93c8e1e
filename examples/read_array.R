# Reads one array through a zarrfs mount with base R only: the shape and the element type
# come from the array's meta.json (its "shape" and its NumPy "dtype", such as "<f4" or
# ">i4"), the elements from `data`, which holds every element in C order in the byte order
# the dtype names; readBin reads either byte order.
#
#   Rscript examples/read_array.R /mnt/zarr/climate/temperature
#
# Prints the shape, the dtype, the first elements and the sum of all of them. Reads the
# dtypes base R can: f4, f8, i1, i2, i4, u1, u2, u4 and b1, in either byte order.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript read_array.R ARRAY_DIRECTORY")
dir <- args[1]

# meta.json is plain JSON; its "shape" and "dtype" fields are all this needs.
meta <- paste(readLines(file.path(dir, "meta.json"), warn = FALSE), collapse = " ")
field <- function(pattern) regmatches(meta, regexec(pattern, meta))[[1]][2]
shape <- as.numeric(strsplit(gsub("\\s", "", field('"shape":\\s*\\[([^]]*)\\]')), ",")[[1]])
dtype <- field('"dtype":\\s*"([^"]*)"')

order <- substr(dtype, 1, 1)          # '<' little-endian, '>' big-endian, '|' single byte
kind <- substr(dtype, 2, 2)           # 'f' float, 'i' signed, 'u' unsigned, 'b' boolean
size <- as.integer(substr(dtype, 3, nchar(dtype)))
count <- prod(shape)                  # 1 for a 0-d array (empty shape)

con <- file(file.path(dir, "data"), "rb")
values <- readBin(
  con,
  what = if (kind == "f") "double" else "integer",
  n = count,
  size = size,
  signed = kind == "i" || size >= 4,  # R reads unsigned only for 1- and 2-byte integers
  endian = if (order == ">") "big" else "little"
)
close(con)
if (kind == "u" && size == 4) values <- ifelse(values < 0, values + 2^32, values)

# The data are in C order (last index fastest); R arrays are in Fortran order, so the
# array with the axes reversed holds them as they are: a[k, j, i] is element [i, j, k].
a <- array(values, dim = rev(if (length(shape)) shape else 1))

say <- function(...) cat(paste(c(...), collapse = " "), "\n", sep = "")
fmt <- function(x) sprintf("%.17g", as.numeric(x))
say("shape", sprintf("%.0f", shape))
say("dtype", dtype)
say("first", fmt(head(as.vector(a), 8)))
say("sum", fmt(sum(as.numeric(values))))
