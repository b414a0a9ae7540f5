#ifndef EDGELAB_CHDF5_SHIM_H
#define EDGELAB_CHDF5_SHIM_H
// HDF5's public constants are macros that expand to function calls or casts, which Swift cannot import
// (and H5P_DEFAULT imports as Int32). Each is re-exposed here as a prefixed static inline function.
#include <hdf5.h>

static inline hid_t edgelab_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t edgelab_H5S_ALL(void) { return H5S_ALL; }
static inline unsigned edgelab_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned edgelab_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline unsigned edgelab_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline hid_t edgelab_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t edgelab_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t edgelab_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t edgelab_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t edgelab_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t edgelab_H5T_C_S1(void) { return H5T_C_S1; }
static inline size_t edgelab_H5T_VARIABLE(void) { return H5T_VARIABLE; }
static inline hid_t edgelab_H5P_FILE_CREATE(void) { return H5P_FILE_CREATE; }
static inline hid_t edgelab_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t edgelab_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t edgelab_H5P_GROUP_CREATE(void) { return H5P_GROUP_CREATE; }
static inline hid_t edgelab_H5P_LINK_CREATE(void) { return H5P_LINK_CREATE; }

/// Turns off HDF5's automatic error printing to stderr; errors are reported as Swift errors instead.
static inline void edgelab_H5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/// Iteration over the links of a group, collecting names through a callback that Swift can supply.
typedef void (*edgelab_name_sink)(const char *name, void *context);
static inline herr_t edgelab_h5_link_visit(hid_t loc, const char *name, const H5L_info_t *info, void *op_data) {
  (void)loc; (void)info;
  void **pair = (void **)op_data;
  ((edgelab_name_sink)pair[0])(name, pair[1]);
  return 0;
}
static inline herr_t edgelab_H5L_list(hid_t group, edgelab_name_sink sink, void *context) {
  void *pair[2] = {(void *)sink, context};
  hsize_t idx = 0;
  return H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, edgelab_h5_link_visit, pair);
}
/// Iteration over the attribute names of an object.
static inline herr_t edgelab_h5_attr_visit(hid_t loc, const char *name, const H5A_info_t *info, void *op_data) {
  (void)loc; (void)info;
  void **pair = (void **)op_data;
  ((edgelab_name_sink)pair[0])(name, pair[1]);
  return 0;
}
static inline herr_t edgelab_H5A_list(hid_t object, edgelab_name_sink sink, void *context) {
  void *pair[2] = {(void *)sink, context};
  hsize_t idx = 0;
  return H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &idx, edgelab_h5_attr_visit, pair);
}
#endif
