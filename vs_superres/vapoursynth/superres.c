/*
 * core.superres: the VapourSynth face of the vs-superres engine.
 *
 * This file only moves frames. Everything else (argument checks, the model, tiling, temporal
 * windows, scene cuts) lives in Python: the filter object made by
 * vs_superres.vapoursynth.bridge.create() says which input frames an output frame needs and
 * renders it. The rules that keep VapourSynth's worker threads and Python's GIL apart:
 *
 *   - the GIL is taken (PyGILState_Ensure) only around calls into Python, and never held
 *     while calling a VapourSynth function that may wait for other threads;
 *   - frames are fetched, created and freed outside the GIL; Python sees their planes as
 *     memoryviews over VapourSynth's memory (no copy), which are released before the frames
 *     are freed;
 *   - a Python exception becomes the filter's error message (its text only, no traceback).
 *
 * Python must already run in the host process (a Python script, vspipe, VSScript); if it
 * does not, it is started on first use.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "VapourSynth4.h"

#define PLUGIN_ID "com.vs-superres.superres"
#define BRIDGE_MODULE "vs_superres.vapoursynth.bridge"
#define ERROR_SIZE 2048

/*
 * Each function's typed signature. The plugin does not interpret arguments: every one that was
 * given goes to the bridge under its own name (ints as int, floats as float, data as str),
 * which checks values and ranges and names the argument in its errors.
 */
#define BASE_ARGS "clip:vnode;model:data:opt;device:data:opt;dtype:data:opt;"
/* Spatial tiling by the engine (image models; UltraVSR tiles by itself, below). */
#define TILE_ARGS "tile:int:opt;overlap:int:opt;"
/* Temporal windows of video models. */
#define WINDOW_ARGS "window:int:opt;window_overlap:int:opt;"
#define WEIGHTS_ARGS "weights:data:opt;"
/* UltraVSR's own options (vs_superres.models.ultravsr); sample_latent and merge_lora are 0/1. */
#define ULTRAVSR_ARGS                                                                          \
    "checkpoint:data:opt;base:data:opt;strength:float:opt;clip_iqa:data:opt;prompt:data:opt;"  \
    "color_fix:data:opt;frames_per_batch:int:opt;unet_tile:int:opt;unet_overlap:int:opt;"      \
    "decoder_tile:int:opt;decoder_overlap:int:opt;encoder_tile:int:opt;encoder_overlap:int:opt;" \
    "tile_grid:data:opt;seed:int:opt;sample_latent:int:opt;merge_lora:int:opt;"

typedef struct {
    const char *name;
    const char *args;
} FunctionSpec;

static const FunctionSpec FUNCTIONS[] = {
    {"DITN", BASE_ARGS TILE_ARGS WEIGHTS_ARGS},
    {"UltraVSR", BASE_ARGS WINDOW_ARGS WEIGHTS_ARGS ULTRAVSR_ARGS},
    {"Upscale", BASE_ARGS TILE_ARGS WINDOW_ARGS WEIGHTS_ARGS ULTRAVSR_ARGS},
};

typedef struct {
    VSNode *node;
    VSVideoInfo vi;      /* output */
    int num_frames;      /* input (== output) */
    int temporal;        /* 0: output frame n needs input frame n only */
    PyObject *filter;    /* the bridge's filter object (owns the engine) */
    char name[64];       /* "superres.DITN" for messages */
} FilterData;

/* What arInitial asked for, kept for arAllFramesReady. */
typedef struct {
    int count;
    int frames[];
} FrameList;

/* ------------------------------------------------------------------------------------------ */
/* Python helpers: all of these expect the GIL to be held.                                  */

static void ensure_python(void) {
    if (!Py_IsInitialized()) {
        Py_InitializeEx(0);
        /* Let go of the GIL that initialisation left with this thread; from now on every
         * caller, this thread included, takes it with PyGILState_Ensure. */
        PyEval_SaveThread();
    }
}

/* The current exception's text, without traceback, into buf; clears the exception. */
static void take_error(char *buf, size_t size, const char *prefix) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    const char *text = NULL;
    PyObject *str = value ? PyObject_Str(value) : NULL;
    if (str)
        text = PyUnicode_AsUTF8(str);
    if (!text) {
        PyErr_Clear();
        text = "unknown Python error";
    }
    /* The bridge's messages already start with the function name. */
    if (prefix && strncmp(text, prefix, strlen(prefix)) != 0)
        snprintf(buf, size, "%s: %s", prefix, text);
    else
        snprintf(buf, size, "%s", text);
    Py_XDECREF(str);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

static int release_view(PyObject *view) {
    /* memoryview.release() fails if Python still holds an export of the buffer; the caller
     * must then keep the memory alive. */
    PyObject *r = PyObject_CallMethod(view, "release", NULL);
    if (!r) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(r);
    return 1;
}

static long get_long_attr(PyObject *obj, const char *attr, int *ok) {
    PyObject *v = PyObject_GetAttrString(obj, attr);
    long r = v ? PyLong_AsLong(v) : -1;
    Py_XDECREF(v);
    if (PyErr_Occurred())
        *ok = 0;
    return r;
}

/* Every argument given except `clip`, as {name: int | float | str}. */
static PyObject *build_args(const VSMap *in, const VSAPI *vsapi) {
    PyObject *args = PyDict_New();
    if (!args)
        return NULL;
    for (int i = 0; i < vsapi->mapNumKeys(in); i++) {
        const char *key = vsapi->mapGetKey(in, i);
        if (strcmp(key, "clip") == 0)
            continue;
        int err = 0;
        PyObject *v = NULL;
        switch (vsapi->mapGetType(in, key)) {
        case ptData: {
            const char *data = vsapi->mapGetData(in, key, 0, &err);
            int size = vsapi->mapGetDataSize(in, key, 0, &err);
            v = PyUnicode_DecodeUTF8(data, size, "replace");
            break;
        }
        case ptInt:
            v = PyLong_FromLongLong(vsapi->mapGetInt(in, key, 0, &err));
            break;
        case ptFloat:
            v = PyFloat_FromDouble(vsapi->mapGetFloat(in, key, 0, &err));
            break;
        default: /* the signatures hold no other types */
            PyErr_Format(PyExc_TypeError, "argument %s has an unsupported type", key);
            break;
        }
        if (!v || PyDict_SetItemString(args, key, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(args);
            return NULL;
        }
        Py_DECREF(v);
    }
    return args;
}

static PyObject *build_clip_info(const VSVideoInfo *vi, const VSAPI *vsapi) {
    char format_name[32] = "";
    const char *family = "undefined";
    if (vi->format.colorFamily != cfUndefined) {
        vsapi->getVideoFormatName(&vi->format, format_name);
        family = vi->format.colorFamily == cfRGB ? "rgb" : vi->format.colorFamily == cfYUV ? "yuv" : "gray";
    }
    return Py_BuildValue(
        "{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:L,s:L}",
        "format", format_name, "color_family", family,
        "float", vi->format.sampleType == stFloat, "bits", vi->format.bitsPerSample,
        "width", vi->width, "height", vi->height, "num_frames", vi->numFrames,
        "fps_num", (long long)vi->fpsNum, "fps_den", (long long)vi->fpsDen);
}

/* ------------------------------------------------------------------------------------------ */

static void VS_CC free_filter(void *instance_data, VSCore *core, const VSAPI *vsapi) {
    FilterData *d = (FilterData *)instance_data;
    (void)core;
    if (d->filter && Py_IsInitialized()) {
#if PY_VERSION_HEX >= 0x030D0000
        int finalizing = Py_IsFinalizing();
#else
        int finalizing = _Py_IsFinalizing();
#endif
        if (!finalizing) {
            PyGILState_STATE gil = PyGILState_Ensure();
            PyObject *r = PyObject_CallMethod(d->filter, "close", NULL);
            if (!r)
                PyErr_Clear();
            Py_XDECREF(r);
            Py_CLEAR(d->filter);
            PyGILState_Release(gil);
        }
    }
    vsapi->freeNode(d->node);
    free(d);
}

/* Ask the bridge which input frames output frame n needs. Returns NULL with msg set on error. */
static FrameList *frames_needed(FilterData *d, int n, char *msg) {
    FrameList *list = NULL;
    if (!d->temporal) {
        list = malloc(sizeof(FrameList) + sizeof(int));
        if (!list) {
            snprintf(msg, ERROR_SIZE, "%s: out of memory", d->name);
            return NULL;
        }
        list->count = 1;
        list->frames[0] = n;
        return list;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(d->filter, "frames_needed", "i", n);
    PyObject *seq = r ? PySequence_Fast(r, "frames_needed must return a sequence") : NULL;
    if (seq) {
        Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
        list = malloc(sizeof(FrameList) + sizeof(int) * (count > 0 ? count : 1));
        if (list) {
            list->count = (int)count;
            for (Py_ssize_t i = 0; i < count; i++)
                list->frames[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
            if (PyErr_Occurred()) {
                free(list);
                list = NULL;
            }
        } else {
            PyErr_NoMemory();
        }
    }
    if (!list)
        take_error(msg, ERROR_SIZE, d->name);
    Py_XDECREF(seq);
    Py_XDECREF(r);
    PyGILState_Release(gil);
    return list;
}

static int64_t get_prop(const VSMap *props, const char *key, const VSAPI *vsapi) {
    int err = 0;
    int64_t v = vsapi->mapGetInt(props, key, 0, &err);
    return err ? -1 : v;
}

/*
 * Hand the frames to the bridge: filter.render(n, indices, planes, strides, props, out_planes,
 * out_stride). Planes are memoryviews over VapourSynth's memory. Returns 1 on success; 0 with
 * msg set on error. *keep_frames is set when Python kept a view alive past the call, in which
 * case the frames must not be freed (a leak is better than a crash).
 */
static int render(FilterData *d, int n, const FrameList *list, const VSFrame **src, VSFrame *dst,
                  const VSAPI *vsapi, char *msg, int *keep_frames) {
    const int planes = 3;
    int ok = 0;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *indices = PyTuple_New(list->count);
    PyObject *views = PyList_New(0);   /* every view made, to release them all at the end */
    PyObject *frames = PyTuple_New(list->count);
    PyObject *strides = PyTuple_New(list->count);
    PyObject *props = PyTuple_New(list->count);
    PyObject *out = PyTuple_New(planes);
    PyObject *r = NULL;
    if (!indices || !views || !frames || !strides || !props || !out)
        goto done;

    for (int i = 0; i < list->count; i++) {
        const VSFrame *f = src[i];
        int h = vsapi->getFrameHeight(f, 0);
        ptrdiff_t stride = vsapi->getStride(f, 0);
        PyObject *fplanes = PyTuple_New(planes);
        if (!fplanes)
            goto done;
        PyTuple_SET_ITEM(frames, i, fplanes);
        for (int p = 0; p < planes; p++) {
            PyObject *mv = PyMemoryView_FromMemory((char *)vsapi->getReadPtr(f, p),
                                                   (Py_ssize_t)stride * h, PyBUF_READ);
            if (!mv || PyList_Append(views, mv) < 0) {
                Py_XDECREF(mv);
                goto done;
            }
            PyTuple_SET_ITEM(fplanes, p, mv);
        }
        const VSMap *fp = vsapi->getFramePropertiesRO(f);
        PyTuple_SET_ITEM(indices, i, PyLong_FromLong(list->frames[i]));
        PyTuple_SET_ITEM(strides, i, PyLong_FromSsize_t(stride));
        PyTuple_SET_ITEM(props, i, Py_BuildValue("(LL)", (long long)get_prop(fp, "_SceneChangePrev", vsapi),
                                                 (long long)get_prop(fp, "_SceneChangeNext", vsapi)));
    }
    ptrdiff_t out_stride = vsapi->getStride(dst, 0);
    for (int p = 0; p < planes; p++) {
        PyObject *mv = PyMemoryView_FromMemory((char *)vsapi->getWritePtr(dst, p),
                                               (Py_ssize_t)out_stride * d->vi.height, PyBUF_WRITE);
        if (!mv || PyList_Append(views, mv) < 0) {
            Py_XDECREF(mv);
            goto done;
        }
        PyTuple_SET_ITEM(out, p, mv);
    }
    if (PyErr_Occurred())
        goto done;
    r = PyObject_CallMethod(d->filter, "render", "iOOOOOn", n, indices, frames, strides, props, out,
                            (Py_ssize_t)out_stride);
    ok = r != NULL;

done:
    if (!ok)
        take_error(msg, ERROR_SIZE, d->name);
    Py_XDECREF(r);
    if (views) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(views); i++)
            if (!release_view(PyList_GET_ITEM(views, i)))
                *keep_frames = 1;
    }
    if (*keep_frames && ok) {
        ok = 0;
        snprintf(msg, ERROR_SIZE, "%s: internal error: the bridge kept a reference to frame memory", d->name);
    }
    Py_XDECREF(indices);
    Py_XDECREF(views);
    Py_XDECREF(frames);
    Py_XDECREF(strides);
    Py_XDECREF(props);
    Py_XDECREF(out);
    PyGILState_Release(gil);
    return ok;
}

static const VSFrame *VS_CC get_frame(int n, int activation_reason, void *instance_data, void **frame_data,
                                      VSFrameContext *frame_ctx, VSCore *core, const VSAPI *vsapi) {
    FilterData *d = (FilterData *)instance_data;
    char msg[ERROR_SIZE];

    if (activation_reason == arInitial) {
        FrameList *list = frames_needed(d, n, msg);
        if (!list) {
            vsapi->setFilterError(msg, frame_ctx);
            return NULL;
        }
        if (list->count < 1) {
            free(list);
            snprintf(msg, ERROR_SIZE, "%s: internal error: no input frames planned for frame %d", d->name, n);
            vsapi->setFilterError(msg, frame_ctx);
            return NULL;
        }
        for (int i = 0; i < list->count; i++)
            vsapi->requestFrameFilter(list->frames[i], d->node, frame_ctx);
        *frame_data = list;
        return NULL;
    }
    if (activation_reason == arError) {
        free(*frame_data);
        *frame_data = NULL;
        return NULL;
    }
    if (activation_reason != arAllFramesReady)
        return NULL;

    FrameList *list = (FrameList *)*frame_data;
    *frame_data = NULL;
    const VSFrame **src = calloc(list->count, sizeof(VSFrame *));
    const VSFrame *own = NULL; /* input frame n: source of the output's properties */
    VSFrame *dst = NULL;
    int ok = src != NULL;
    if (!ok)
        snprintf(msg, ERROR_SIZE, "%s: out of memory", d->name);
    for (int i = 0; ok && i < list->count; i++) {
        src[i] = vsapi->getFrameFilter(list->frames[i], d->node, frame_ctx);
        if (list->frames[i] == n)
            own = src[i];
        if (!vsapi->getReadPtr(src[i], 0)) {
            snprintf(msg, ERROR_SIZE, "%s: frame %d is not in CPU memory; GPU-resident frames are not supported",
                     d->name, list->frames[i]);
            ok = 0;
        }
    }
    if (ok) {
        dst = vsapi->newVideoFrame(&d->vi.format, d->vi.width, d->vi.height, own ? own : src[0], core);
        int keep_frames = 0;
        ok = render(d, n, list, src, dst, vsapi, msg, &keep_frames);
        if (keep_frames) {
            /* Python still points at these frames: never free them. */
            free(src);
            src = NULL;
            dst = NULL;
        }
    }
    if (src) {
        for (int i = 0; i < list->count; i++)
            vsapi->freeFrame(src[i]);
        free(src);
    }
    free(list);
    if (!ok) {
        vsapi->freeFrame(dst);
        vsapi->setFilterError(msg, frame_ctx);
        return NULL;
    }
    return dst;
}

static void VS_CC create(const VSMap *in, VSMap *out, void *user_data, VSCore *core, const VSAPI *vsapi) {
    const char *function = (const char *)user_data;
    char name[64], msg[ERROR_SIZE];
    snprintf(name, sizeof(name), "superres.%s", function);

    VSNode *node = vsapi->mapGetNode(in, "clip", 0, NULL);
    const VSVideoInfo *vi = vsapi->getVideoInfo(node);

    ensure_python();
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *filter = NULL, *notes = NULL;
    PyObject *args = build_args(in, vsapi);
    PyObject *clip = args ? build_clip_info(vi, vsapi) : NULL;
    PyObject *bridge = clip ? PyImport_ImportModule(BRIDGE_MODULE) : NULL;
    if (bridge)
        filter = PyObject_CallMethod(bridge, "create", "sOO", function, args, clip);
    int ok = filter != NULL;
    long out_w = 0, out_h = 0, temporal = 0;
    if (ok) {
        out_w = get_long_attr(filter, "out_width", &ok);
        out_h = get_long_attr(filter, "out_height", &ok);
        temporal = get_long_attr(filter, "temporal", &ok);
        notes = ok ? PyObject_GetAttrString(filter, "notes") : NULL;
        ok = notes != NULL;
    }
    /* Notes (e.g. a precision fallback) go to VapourSynth's log, never to stdout. */
    if (ok) {
        PyObject *seq = PySequence_Fast(notes, "notes must be a sequence");
        if (seq) {
            for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
                const char *text = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
                if (text)
                    vsapi->logMessage(mtInformation, text, core);
            }
            Py_DECREF(seq);
        }
        PyErr_Clear();
    } else {
        take_error(msg, sizeof(msg), name);
        Py_CLEAR(filter);
    }
    Py_XDECREF(notes);
    Py_XDECREF(bridge);
    Py_XDECREF(clip);
    Py_XDECREF(args);
    PyGILState_Release(gil);

    if (!ok) {
        vsapi->freeNode(node);
        vsapi->mapSetError(out, msg);
        return;
    }

    FilterData *d = calloc(1, sizeof(FilterData));
    if (!d) {
        gil = PyGILState_Ensure();
        Py_DECREF(filter);
        PyGILState_Release(gil);
        vsapi->freeNode(node);
        vsapi->mapSetError(out, "superres: out of memory");
        return;
    }
    d->node = node;
    d->vi = *vi;
    d->vi.width = (int)out_w;
    d->vi.height = (int)out_h;
    d->num_frames = vi->numFrames;
    d->temporal = (int)temporal;
    d->filter = filter;
    snprintf(d->name, sizeof(d->name), "%s", name);

    VSFilterDependency deps[] = {{node, temporal ? rpGeneral : rpStrictSpatial}};
    /* fmParallel: the engine serialises what must be serialised (window cache, model). */
    vsapi->createVideoFilter(out, function, &d->vi, get_frame, free_filter, fmParallel, deps, 1, d, core);
}

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    vspapi->configPlugin(PLUGIN_ID, "superres", "Super-resolution with the vs-superres engine (DITN, UltraVSR)",
                         VS_MAKE_VERSION(1, 0), VAPOURSYNTH_API_VERSION, 0, plugin);
    for (size_t i = 0; i < sizeof(FUNCTIONS) / sizeof(FUNCTIONS[0]); i++)
        vspapi->registerFunction(FUNCTIONS[i].name, FUNCTIONS[i].args, "clip:vnode;", create,
                                 (void *)FUNCTIONS[i].name, plugin);
}
