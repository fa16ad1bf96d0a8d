// cifar.h — CIFAR-10 and CIFAR-100 in their official binary format.
//
// CIFAR-10 (cifar-10-batches-bin/): data_batch_1.bin .. data_batch_5.bin (train,
// 10000 records each) and test_batch.bin (10000); a record is 1 label byte
// (0..9) then 3072 pixel bytes: the R plane, then G, then B, each 32 rows of 32
// — already (C, H, W), so a record's pixels are copied as they are.
// batches.meta.txt, when present, names the 10 classes, one per line.
//
// CIFAR-100 (cifar-100-binary/): train.bin (50000 records) and test.bin (10000);
// a record is 1 coarse label byte (0..19), 1 fine label byte (0..99), then the
// same 3072 pixel bytes. Fine labels by default, coarse on request;
// fine_label_names.txt / coarse_label_names.txt name the classes when present.
//
// Every file is checked whole before a single image is used: its size must be
// exactly the official record count times the record size (or, with
// check_official_counts off, for small test files, a positive whole number of
// records) and every label must be in range. Errors name the file.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace vitscale::data {

constexpr int kCifarImageBytes = 3 * 32 * 32;

enum class Cifar100Labels { fine, coarse };

// `dir` holds the .bin files directly (e.g. ./data/cifar-10-batches-bin).
Dataset load_cifar10(const std::string& dir, Split split, bool check_official_counts = true);
Dataset load_cifar100(const std::string& dir, Split split, Cifar100Labels labels = Cifar100Labels::fine,
                      bool check_official_counts = true);

// The file one needs to see in a directory to call it a CIFAR-10 / CIFAR-100 directory.
constexpr const char* kCifar10MarkerFile = "data_batch_1.bin";
constexpr const char* kCifar100MarkerFile = "train.bin";

}  // namespace vitscale::data
