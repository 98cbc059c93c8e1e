/*
 * Reads one array through a zarrfs mount with nothing but POSIX: the element type and the
 * shape come from the extended attributes zarrfs puts on `data` (user.zarr.dtype, e.g.
 * "<f4", and user.zarr.shape, e.g. "24,90,180"), the elements from `data` itself, mapped
 * into memory. `data` holds every element in C order, in the byte order the dtype names.
 *
 *   gcc -O2 -o read_array examples/read_array.c
 *   ./read_array /mnt/zarr/climate/temperature
 *
 * Prints the shape, the dtype, the first elements and the sum of all of them.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Reads the extended attribute `name` of `path` into `out` as a string. */
static int attribute(const char *path, const char *name, char *out, size_t size) {
    ssize_t n = getxattr(path, name, out, size - 1);
    if (n < 0) {
        perror(name);
        return -1;
    }
    out[n] = '\0';
    return 0;
}

/* Element `i` of `bytes` as a double, for a NumPy dtype string such as "<f4" or ">i2". */
static double element(const unsigned char *bytes, size_t i, char order, char kind, int size) {
    unsigned char b[8];
    const int host_little = 1 == *(const unsigned char *)&(const uint16_t){1};
    int swap = (order == '<' && !host_little) || (order == '>' && host_little);
    for (int k = 0; k < size; k++)
        b[k] = bytes[i * size + (swap ? size - 1 - k : k)];
    switch (kind) {
    case 'f':
        if (size == 4) { float v; memcpy(&v, b, 4); return v; }
        if (size == 8) { double v; memcpy(&v, b, 8); return v; }
        break;
    case 'i':
        if (size == 1) { int8_t v; memcpy(&v, b, 1); return v; }
        if (size == 2) { int16_t v; memcpy(&v, b, 2); return v; }
        if (size == 4) { int32_t v; memcpy(&v, b, 4); return v; }
        if (size == 8) { int64_t v; memcpy(&v, b, 8); return (double)v; }
        break;
    case 'u': case 'b':
        if (size == 1) { uint8_t v; memcpy(&v, b, 1); return v; }
        if (size == 2) { uint16_t v; memcpy(&v, b, 2); return v; }
        if (size == 4) { uint32_t v; memcpy(&v, b, 4); return v; }
        if (size == 8) { uint64_t v; memcpy(&v, b, 8); return (double)v; }
        break;
    }
    fprintf(stderr, "unsupported dtype %c%c%d\n", order, kind, size);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ARRAY_DIRECTORY\n", argv[0]);
        return 2;
    }
    char path[4096], dtype[64], shape[1024];
    snprintf(path, sizeof path, "%s/data", argv[1]);
    if (attribute(path, "user.zarr.dtype", dtype, sizeof dtype) ||
        attribute(path, "user.zarr.shape", shape, sizeof shape))
        return 1;
    char order = dtype[0], kind = dtype[1];
    int size = atoi(dtype + 2);

    /* The shape: comma-separated lengths ("" for a 0-d array, which holds one element). */
    size_t count = 1;
    printf("shape");
    for (char *dim = strtok(shape, ","); dim; dim = strtok(NULL, ",")) {
        count *= strtoull(dim, NULL, 10);
        printf(" %s", dim);
    }
    printf("\ndtype %s\n", dtype);

    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    const unsigned char *bytes = NULL;
    if (count > 0) {
        bytes = mmap(NULL, count * size, PROT_READ, MAP_SHARED, fd, 0);
        if (bytes == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
    }
    double sum = 0;
    printf("first");
    for (size_t i = 0; i < count; i++) {
        double v = element(bytes, i, order, kind, size);
        if (i < 8)
            printf(" %.17g", v);
        sum += v;
    }
    printf("\nsum %.17g\n", sum);
    close(fd);
    return 0;
}
