// weft/parallel.hpp — the fork/join module: the work-stealing pool and the algorithms built on it.
#pragma once

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/matmul.hpp"
#include "weft/parallel/parallel_for.hpp"
#include "weft/parallel/pipeline.hpp"
#include "weft/parallel/reduce.hpp"
#include "weft/parallel/sort.hpp"
#include "weft/parallel/task_group.hpp"
