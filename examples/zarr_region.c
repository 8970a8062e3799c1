/* Zarr arrays: create a 2-d uint16 array at PATH (chunks of 16 x 16,
 * zstd), write a region, read a region across chunk borders, then stream
 * the array row-slab by row-slab, printing sums as it goes.
 *     cc zarr_region.c $(pkg-config --cflags --libs lumio) */
#include <lumio/zarr.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    char err[LUMIO_ERROR_MAX];
    lumio_zarr_create_options co = {0}; /* zarr v2, zstd:3, fill value 0 */
    co.ndim = 2;
    co.shape[0] = 64, co.shape[1] = 48;
    co.chunks[0] = 16, co.chunks[1] = 16;
    co.dtype = "<u2";
    lumio_zarr *z;
    if (lumio_zarr_create(&z, argv[1], &co, NULL) < 0) {
        fprintf(stderr, "%s\n", lumio_zarr_last_error(NULL, err, sizeof err));
        return 1;
    }
    static uint16_t in[20][30], out[8][8];
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 30; j++) in[i][j] = (uint16_t)(i * 100 + j);
    uint64_t wstart[2] = {10, 5}, wshape[2] = {20, 30};
    uint64_t rstart[2] = {12, 12}, rshape[2] = {8, 8};
    int rc = lumio_zarr_write(z, wstart, wshape, in);
    if (rc == 0) rc = lumio_zarr_read(z, rstart, rshape, out);
    if (rc < 0) {
        fprintf(stderr, "%s\n", lumio_zarr_last_error(z, err, sizeof err));
        lumio_zarr_close(z);
        return 1;
    }
    unsigned long long sum = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) sum += out[i][j];
    printf("region sum %llu\n", sum);

    lumio_zarr_series *s;
    if (lumio_zarr_series_open(&s, z, 0, 16, NULL, NULL, 2) < 0) {
        fprintf(stderr, "%s\n", lumio_zarr_last_error(z, err, sizeof err));
        lumio_zarr_close(z);
        return 1;
    }
    const void *data;
    uint64_t index;
    int64_t n;
    while ((n = lumio_zarr_series_next(s, &data, &index)) > 0) {
        const uint16_t *v = data;
        unsigned long long slab = 0;
        for (int64_t k = 0; k < n / 2; k++) slab += v[k];
        printf("slab %llu sum %llu\n", (unsigned long long)index, slab);
    }
    if (n < 0) fprintf(stderr, "%s\n", lumio_zarr_last_error(z, err, sizeof err));
    lumio_zarr_series_close(s);
    lumio_zarr_close(z);
    return n < 0;
}
