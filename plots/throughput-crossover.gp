# throughput-crossover: tokens per second against the requests kept in flight (closed loop) for Llama 2 70B FP16
# on 24 Orin NX 16 GB and an AGX Orin (simulated): the latency plan, EdgeShard's throughput plan as the paper
# states it (a full pipeline) and the throughput plan for the workload's requests in flight.
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/throughput-crossover"
if (!exists("outbase")) outbase = "results/throughput-crossover"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set grid
set xlabel "requests in flight (closed loop)"
set ylabel "throughput (tokens/s)"
set key top left font ",10"
set logscale xy 2
set xtics (1, 2, 4, 8, 16, 32)

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 900,560 font ",11" } else { set terminal pdfcairo size 6in,3.8in font ",9" }
  set output outbase.".".fmt
  set title "Llama 2 70B FP16 on 24 Orin NX + AGX Orin, 1 Gbit/s (simulated)"
  plot for [l in labels] datadir."/".l.".tsv" using "concurrency":"throughput_tokens_per_s" \
       with linespoints lw 2 pt 7 title l
}
