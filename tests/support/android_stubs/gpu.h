// Declaration stub of the part of ncnn's gpu.h the demo uses (present in ncnn's Vulkan builds). Type-checking only.
#pragma once
namespace ncnn {
int get_gpu_count();
}
