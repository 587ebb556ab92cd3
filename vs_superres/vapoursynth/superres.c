/*
 * core.superres: the VapourSynth face of the vs-superres engine.
 *
 * This file only moves frames. Everything else lives in Python: which functions exist and
 * their arguments (vs_superres.vapoursynth.signatures, derived from the option declarations),
 * argument checks, the model, tiling, temporal windows, scene cuts. The filter object made by
 * vs_superres.vapoursynth.bridge.create() says which input frames an output frame needs and
 * renders it. The rules that keep VapourSynth's worker threads and Python's GIL apart:
 *
 *   - the GIL is taken (PyGILState_Ensure) only around calls into Python, and never held
 *     while calling a VapourSynth function that may wait for other threads;
 *   - frames are fetched, created and freed outside the GIL; Python sees their planes as
 *     memoryviews over VapourSynth's memory (no copy), which are released before the frames
 *     are freed;
 *   - a Python exception becomes the filter's error message (its text only, no traceback);
 *     for an internal error (a bug) the bridge attaches the traceback, which goes to
 *     VapourSynth's log as a warning.
 *
 * Python normally already runs in the host process (a Python script, vspipe, VSScript); if it
 * does not, it is started when the plugin loads.
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
 * The functions and their typed signatures come from Python, derived from the engine's and
 * the model families' option declarations: signatures() returns [(name, argument string)].
 * The plugin does not interpret arguments: every one that was given goes to the bridge under
 * its own name (ints as int, floats as float, data as str), which checks values and ranges
 * and names the argument in its errors.
 */
#define SIGNATURES_MODULE "vs_superres.vapoursynth.signatures"
#define SIGNATURES_FUNCTION "signatures"
#define RETURN_TYPE "clip:vnode;"

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

static int python_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

static void ensure_python(void) {
    if (!Py_IsInitialized()) {
        Py_InitializeEx(0);
        /* Let go of the GIL that initialisation left with this thread; from now on every
         * caller, this thread included, takes it with PyGILState_Ensure. */
        PyEval_SaveThread();
    }
}

static char *copy_text(const char *text) {
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (copy)
        memcpy(copy, text, len + 1);
    return copy;
}

/*
 * The current exception's text (with_type: "TypeName: text"), without traceback, into buf;
 * clears the exception. The bridge gives an internal error (a bug, not the user's mistake) a
 * `superres_traceback` string; with trace non-NULL, *trace becomes a malloc'ed copy of it (or
 * stays NULL), for the caller to put in VapourSynth's log once it has let go of the GIL.
 */
static void take_error(char *buf, size_t size, const char *prefix, int with_type, char **trace) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (trace && value && PyObject_HasAttrString(value, "superres_traceback")) {
        PyObject *t = PyObject_GetAttrString(value, "superres_traceback");
        const char *t_text = t && PyUnicode_Check(t) ? PyUnicode_AsUTF8(t) : NULL;
        if (t_text)
            *trace = copy_text(t_text);
        Py_XDECREF(t);
        PyErr_Clear();
    }
    const char *text = NULL;
    PyObject *str = value ? PyObject_Str(value) : NULL;
    if (str)
        text = PyUnicode_AsUTF8(str);
    if (!text) {
        PyErr_Clear();
        text = "unknown Python error";
    }
    if (with_type && type && PyType_Check(type))
        snprintf(buf, size, "%s: %s", ((PyTypeObject *)type)->tp_name, text);
    /* The bridge's messages already start with the function name. */
    else if (prefix && strncmp(text, prefix, strlen(prefix)) != 0)
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
        if (!python_finalizing()) {
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

/* Ask the bridge which input frames output frame n needs. Returns NULL with msg (and maybe
 * *trace) set on error. */
static FrameList *frames_needed(FilterData *d, int n, char *msg, char **trace) {
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
        take_error(msg, ERROR_SIZE, d->name, 0, trace);
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
 * msg (and maybe *trace) set on error. *keep_frames is set when Python kept a view alive past
 * the call, in which case the frames must not be freed (a leak is better than a crash).
 */
static int render(FilterData *d, int n, const FrameList *list, const VSFrame **src, VSFrame *dst,
                  const VSAPI *vsapi, char *msg, char **trace, int *keep_frames) {
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
        take_error(msg, ERROR_SIZE, d->name, 0, trace);
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

/* An internal error's traceback into VapourSynth's log (shown by vspipe), then freed. Called
 * without the GIL: a log handler may be Python code running on another thread. */
static void log_trace(char *trace, VSCore *core, const VSAPI *vsapi) {
    if (!trace)
        return;
    vsapi->logMessage(mtWarning, trace, core);
    free(trace);
}

static const VSFrame *VS_CC get_frame(int n, int activation_reason, void *instance_data, void **frame_data,
                                      VSFrameContext *frame_ctx, VSCore *core, const VSAPI *vsapi) {
    FilterData *d = (FilterData *)instance_data;
    char msg[ERROR_SIZE];
    char *trace = NULL;

    if (activation_reason == arInitial) {
        FrameList *list = frames_needed(d, n, msg, &trace);
        if (!list) {
            log_trace(trace, core, vsapi);
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
        ok = render(d, n, list, src, dst, vsapi, msg, &trace, &keep_frames);
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
        log_trace(trace, core, vsapi);
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
    char **note_texts = NULL, *trace = NULL;
    Py_ssize_t note_count = 0;
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
    /* Notes (e.g. a precision fallback) go to VapourSynth's log, never to stdout; copied here,
     * logged once the GIL is released. */
    if (ok) {
        PyObject *seq = PySequence_Fast(notes, "notes must be a sequence");
        Py_ssize_t count = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
        note_texts = count > 0 ? calloc((size_t)count, sizeof(char *)) : NULL;
        for (Py_ssize_t i = 0; note_texts && i < count; i++) {
            const char *text = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
            if (text && (note_texts[note_count] = copy_text(text)))
                note_count++;
        }
        Py_XDECREF(seq);
        PyErr_Clear();
    } else {
        take_error(msg, sizeof(msg), name, 0, &trace);
        Py_CLEAR(filter);
    }
    Py_XDECREF(notes);
    Py_XDECREF(bridge);
    Py_XDECREF(clip);
    Py_XDECREF(args);
    PyGILState_Release(gil);

    for (Py_ssize_t i = 0; i < note_count; i++) {
        vsapi->logMessage(mtInformation, note_texts[i], core);
        free(note_texts[i]);
    }
    free(note_texts);
    log_trace(trace, core, vsapi);
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
    /* fmParallel: frames render on several threads at once. The engine limits concurrent model
     * calls per device with a process-wide ticket pool (vs_superres.runtime.devices.device_slots,
     * $SUPERRES_MAX_INFLIGHT tickets, default 1), locks its caches (windows, per-clip state) and
     * computes render_frame on the device's engine thread (vs_superres.runtime.engine_threads:
     * one OpenMP team, not one per VapourSynth thread), so nothing is serialised here. */
    vsapi->createVideoFilter(out, function, &d->vi, get_frame, free_filter, fmParallel, deps, 1, d, core);
}

/* ------------------------------------------------------------------------------------------ */
/* Registration.                                                                             */

/*
 * A function's name is create()'s user_data, so it must outlive every core that registered
 * it. Names are interned: one copy per distinct name for the life of the process, never freed
 * (VapourSynth may load the plugin into several cores). The list is only touched with the GIL
 * held, which serialises concurrent plugin loads.
 */
typedef struct InternedName {
    struct InternedName *next;
    char text[];
} InternedName;

static InternedName *interned_names = NULL;

static const char *intern_name(const char *text) {
    for (InternedName *n = interned_names; n; n = n->next)
        if (strcmp(n->text, text) == 0)
            return n->text;
    size_t len = strlen(text);
    InternedName *n = malloc(sizeof(InternedName) + len + 1);
    if (!n)
        return NULL;
    memcpy(n->text, text, len + 1);
    n->next = interned_names;
    interned_names = n;
    return n->text;
}

typedef struct {
    const char *name; /* interned */
    char *args;       /* malloc'ed; freed once registered */
} Signature;

static void free_signatures(Signature *sigs, Py_ssize_t count) {
    if (!sigs)
        return;
    for (Py_ssize_t i = 0; i < count; i++)
        free(sigs[i].args);
    free(sigs);
}

/*
 * signatures.signatures(), i.e. [(function name, argument string)], copied into C memory.
 * Expects the GIL. Returns NULL with msg set (one line, naming the Python error) on failure.
 */
static Signature *load_signatures(Py_ssize_t *count, char *msg, size_t size) {
    Signature *sigs = NULL;
    Py_ssize_t n = 0;
    PyObject *module = PyImport_ImportModule(SIGNATURES_MODULE);
    PyObject *result = module ? PyObject_CallMethod(module, SIGNATURES_FUNCTION, NULL) : NULL;
    PyObject *seq = result ? PySequence_Fast(result, SIGNATURES_FUNCTION "() did not return a sequence") : NULL;
    if (seq) {
        n = PySequence_Fast_GET_SIZE(seq);
        sigs = calloc(n > 0 ? (size_t)n : 1, sizeof(Signature));
        if (!sigs)
            PyErr_NoMemory();
        else if (n == 0)
            PyErr_SetString(PyExc_ValueError, SIGNATURES_FUNCTION "() returned no functions");
        for (Py_ssize_t i = 0; sigs && !PyErr_Occurred() && i < n; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
                !PyUnicode_Check(PyTuple_GET_ITEM(item, 1))) {
                PyErr_Format(PyExc_TypeError, SIGNATURES_FUNCTION "() item %zd is not a (name, argument string) "
                             "pair of str", i);
                break;
            }
            const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(item, 0));
            const char *args = name ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(item, 1)) : NULL;
            if (!args)
                break;
            sigs[i].name = intern_name(name);
            sigs[i].args = copy_text(args);
            if (!sigs[i].name || !sigs[i].args)
                PyErr_NoMemory();
        }
    }
    if (PyErr_Occurred() || !seq) {
        char error[ERROR_SIZE];
        take_error(error, sizeof(error), NULL, 1, NULL);
        if (!module)
            snprintf(msg, size, "cannot import %s (%s); is vs-superres installed in the Python that "
                     "VapourSynth runs?", SIGNATURES_MODULE, error);
        else
            snprintf(msg, size, "%s.%s() failed (%s)", SIGNATURES_MODULE, SIGNATURES_FUNCTION, error);
        free_signatures(sigs, n);
        sigs = NULL;
        n = 0;
    }
    Py_XDECREF(seq);
    Py_XDECREF(result);
    Py_XDECREF(module);
    *count = n;
    return sigs;
}

static void print_registration_error(const char *what) {
    char line[ERROR_SIZE + 256];
    snprintf(line, sizeof(line), "vs-superres: core.superres has no functions: %s", what);
    for (char *c = line; *c; c++) /* one line, whatever the Python message held */
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

/*
 * The namespace always exists; its functions are what signatures() says. If Python cannot
 * give them (vs-superres missing or broken, a bad $SUPERRES_FAMILIES module), nothing is
 * registered and one line naming the Python error goes to stderr: VapourSynth itself keeps
 * working, and scripts that call core.superres fail with VapourSynth's "no such function".
 */
VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    vspapi->configPlugin(PLUGIN_ID, "superres", "Super-resolution with the vs-superres engine",
                         VS_MAKE_VERSION(1, 0), VAPOURSYNTH_API_VERSION, 0, plugin);
    if (Py_IsInitialized() && python_finalizing()) {
        print_registration_error("Python is shutting down, so the function signatures cannot be read");
        return;
    }
    char msg[ERROR_SIZE] = "";
    Py_ssize_t count = 0;
    ensure_python();
    PyGILState_STATE gil = PyGILState_Ensure();
    Signature *sigs = load_signatures(&count, msg, sizeof(msg));
    PyGILState_Release(gil);
    if (!sigs) {
        print_registration_error(msg);
        return;
    }
    /* Outside the GIL, like every other call into VapourSynth. */
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!vspapi->registerFunction(sigs[i].name, sigs[i].args, RETURN_TYPE, create, (void *)sigs[i].name, plugin))
            fprintf(stderr, "vs-superres: VapourSynth refused to register core.superres.%s with the argument "
                    "string \"%s\"\n", sigs[i].name, sigs[i].args);
    }
    free_signatures(sigs, count);
}
